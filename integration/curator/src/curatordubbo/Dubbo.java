package curatordubbo;

import static curatordubbo.Support.WAIT_MS;
import static curatordubbo.Support.sorted;
import static curatordubbo.Support.str;
import static curatordubbo.Support.urls;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.CuratorWatcher;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;

/** Dubbo's names and its ways with Curator, as Main's steps use them. */
final class Dubbo {
  private Dubbo() {}

  static final String IFACE = "org.apache.dubbo.demo.DemoService";
  static final String APP = "demo-provider";
  static String root;

  static String p(String rel) {
    return root + rel;
  }

  static String rel(String path) {
    return path != null && path.startsWith(root) ? path.substring(root.length()) : String.valueOf(path);
  }

  static String providerUrl(String host) {
    String u = "dubbo://" + host + ":20880/" + IFACE + "?anyhost=true&application=" + APP
        + "&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=" + IFACE
        + "&methods=sayHello,sayHelloAsync&pid=4242&release=3.2.10&service-name-mapping=true&side=provider"
        + "&timestamp=1700000000000";
    return "/dubbo/" + IFACE + "/providers/" + URLEncoder.encode(u, StandardCharsets.UTF_8);
  }

  static final String CONSUMER = "/dubbo/" + IFACE + "/consumers/"
      + URLEncoder.encode("consumer://127.0.0.1/" + IFACE + "?application=demo-consumer&category=consumers"
          + "&check=false&dubbo=2.0.2&interface=" + IFACE + "&methods=sayHello,sayHelloAsync&pid=4343"
          + "&side=consumer&sticky=false&timestamp=1700000000001", StandardCharsets.UTF_8);
  static final String CONFIG_KEY = "/dubbo/config/dubbo/" + APP + ".configurators";

  static CuratorFramework client(String addr, int sessionMs, Support.Events states) throws InterruptedException {
    // Dubbo's CuratorZookeeperClient: one retry after a second, its own
    // session and connection timeouts.
    CuratorFramework c = CuratorFrameworkFactory.builder().connectString(addr)
        .retryPolicy(new RetryNTimes(1, 1000)).connectionTimeoutMs((int) WAIT_MS)
        .sessionTimeoutMs(sessionMs).build();
    if (states != null) {
      c.getConnectionStateListenable().addListener((cl, st) -> states.add(st.toString()));
    }
    c.start();
    if (!c.blockUntilConnected((int) WAIT_MS, TimeUnit.MILLISECONDS)) {
      throw new IllegalStateException("not connected to " + addr + " within " + WAIT_MS + "ms");
    }
    return c;
  }

  static long sid(CuratorFramework c) throws Exception {
    return c.getZookeeperClient().getZooKeeper().getSessionId();
  }

  /**
   * Dubbo's AbstractZookeeperClient.create: persistent parents one by one
   * (an absolute path, from the top), then the node.
   */
  static void dubboCreate(CuratorFramework c, String abs, boolean ephemeral) throws Exception {
    if (!ephemeral && c.checkExists().forPath(abs) != null) {
      return;
    }
    int i = abs.lastIndexOf('/');
    if (i > 0) {
      dubboCreate(c, abs.substring(0, i), false);
    }
    try {
      c.create().withMode(ephemeral ? CreateMode.EPHEMERAL : CreateMode.PERSISTENT).forPath(abs);
    } catch (KeeperException.NodeExistsException e) {
      if (ephemeral) {
        throw e;
      }
    }
  }

  /** Dubbo's subscription watcher: re-armed on every event, connection events ignored. */
  static final class ChildWatcher implements CuratorWatcher {
    final CuratorFramework c;
    final String path;
    final Support.Events ev;

    ChildWatcher(CuratorFramework c, String path, Support.Events ev) {
      this.c = c;
      this.path = path;
      this.ev = ev;
    }

    @Override
    public void process(WatchedEvent e) throws Exception {
      if (e.getType() == Watcher.Event.EventType.None) {
        return;
      }
      List<String> kids = c.getChildren().usingWatcher(this).forPath(p(path));
      ev.add(e.getType() + " " + rel(e.getPath()) + " " + urls(kids));
    }
  }

  /**
   * settled keeps a ServiceCache's state events and the change it was
   * waited for: it rebuilds itself on a reconnect through states that
   * depend on timing.
   */
  static List<String> settled(List<String> evs, String want) {
    List<String> out = new ArrayList<>();
    for (String e : evs) {
      if (!e.startsWith("changed ")) {
        out.add(e);
      }
    }
    out.add(evs.contains("changed " + want) ? "changed " + want : "TIMEOUT");
    return out;
  }

  static String data(ChildData d) {
    return d == null ? "-" : rel(d.getPath()) + "=" + str(d.getData());
  }

  static ServiceInstance<ZookeeperInstance> instance(String host, String revision) throws Exception {
    String id = host + ":20880";
    Map<String, String> md = Map.of("dubbo.endpoints", "[{\"port\":20880,\"protocol\":\"dubbo\"}]",
        "dubbo.metadata.revision", revision, "dubbo.metadata.storage-type", "local");
    return ServiceInstance.<ZookeeperInstance>builder().id(id).name(APP).address(host).port(20880)
        .payload(new ZookeeperInstance(id, APP, md)).build();
  }

  static ServiceDiscovery<ZookeeperInstance> discovery(CuratorFramework c) throws Exception {
    ServiceDiscovery<ZookeeperInstance> sd = ServiceDiscoveryBuilder.builder(ZookeeperInstance.class).client(c)
        .basePath(p("/services")).serializer(new JsonInstanceSerializer<>(ZookeeperInstance.class)).build();
    sd.start();
    return sd;
  }

  static String instances(ServiceCache<ZookeeperInstance> cache) {
    List<String> out = new ArrayList<>();
    for (ServiceInstance<ZookeeperInstance> i : cache.getInstances()) {
      out.add(i.getId() + "@" + i.getPayload().getMetadata().get("dubbo.metadata.revision"));
    }
    return sorted(out);
  }
}
