package curatordubbo;

import static curatordubbo.Dubbo.APP;
import static curatordubbo.Dubbo.CONFIG_KEY;
import static curatordubbo.Dubbo.CONSUMER;
import static curatordubbo.Dubbo.IFACE;
import static curatordubbo.Dubbo.client;
import static curatordubbo.Dubbo.data;
import static curatordubbo.Dubbo.discovery;
import static curatordubbo.Dubbo.dubboCreate;
import static curatordubbo.Dubbo.instance;
import static curatordubbo.Dubbo.instances;
import static curatordubbo.Dubbo.p;
import static curatordubbo.Dubbo.providerUrl;
import static curatordubbo.Dubbo.rel;
import static curatordubbo.Dubbo.settled;
import static curatordubbo.Dubbo.sid;
import static curatordubbo.Support.sorted;
import static curatordubbo.Support.step;
import static curatordubbo.Support.str;
import static curatordubbo.Support.timedOut;
import static curatordubbo.Support.urls;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.data.Stat;

/**
 * What Java Dubbo 3 does with ZooKeeper through Curator, in a fixed order,
 * against one server, printing one line per step ("step NAME ok|fail
 * DETAIL"): nothing that differs between two correct servers (session
 * ids, zxids, times, children order) is printed, so two transcripts can be
 * compared as they are. Usage: Main HOST:PORT ROOT [restart] (restart:
 * see Restart). Every path is under ROOT, printed without it. The main
 * client (Dubbo's) goes through a proxy that the reconnect step cuts; a
 * second client (another app) goes straight to the server; a third, with
 * a short session, through a proxy of its own that the expire step cuts.
 */
public final class Main {
  interface Body {
    String run() throws Exception;
  }

  /** run does one step: its detail, or the exception it threw, is the line. */
  static void run(String name, Body b) {
    try {
      String d = b.run();
      step(name, !d.contains("TIMEOUT") && !d.contains("UNEXPECTED"), d);
    } catch (KeeperException e) {
      step(name, false, "KeeperException " + e.code() + " " + rel(e.getPath()));
    } catch (Exception e) {
      step(name, false, e.getClass().getSimpleName() + " " + e.getMessage());
    }
  }

  /** The main client's session, as it was first: a reconnect must keep it. */
  static long mainSid;

  /** owner says whose node path is, as the other client sees it. */
  static String owner(CuratorFramework other, String path) throws Exception {
    Stat st = other.checkExists().forPath(p(path));
    if (st == null) {
      return "absent";
    }
    long o = st.getEphemeralOwner();
    if (o == 0) {
      return "persistent";
    }
    if (o == Long.MIN_VALUE) {
      return "container";
    }
    return o == mainSid ? "ephemeral(main)" : o == sid(other) ? "ephemeral(other)" : "ephemeral(?)";
  }

  public static void main(String[] args) throws Exception {
    boolean restart = args.length == 3 && args[2].equals("restart");
    if ((args.length != 2 && !restart) || !args[1].startsWith("/") || args[1].endsWith("/")) {
      System.err.println("usage: Main HOST:PORT ROOT [restart] (ROOT an absolute path, not / itself)");
      System.exit(2);
    }
    Dubbo.root = args[1];
    if (restart) {
      Restart.steps(args[0]);
    } else {
      try (Support.Proxy proxy = new Support.Proxy(args[0]); Support.Proxy proxy2 = new Support.Proxy(args[0])) {
        steps(args[0], proxy, proxy2);
      }
    }
    System.out.println("done failures=" + Support.failures);
    System.exit(Support.failures == 0 ? 0 : 1);
  }

  @SuppressWarnings("deprecation") // TreeCache and NodeCache: what Dubbo 2.7 and 3.0 use
  static void steps(String server, Support.Proxy proxy, Support.Proxy proxy2) throws Exception {
    Support.Events states = new Support.Events("states");
    Support.Events subs = new Support.Events("subscription");
    Support.Events cc = new Support.Events("curatorcache");
    Support.Events tc = new Support.Events("treecache");
    Support.Events nc = new Support.Events("nodecache");
    Support.Events sc = new Support.Events("servicecache");
    Support.Events seen = new Support.Events("other");
    CuratorFramework main = client("127.0.0.1:" + proxy.port(), 60_000, states);
    CuratorFramework other = client(server, 30_000, null);
    mainSid = sid(main);
    run("connect", () -> "states=" + states.await(s -> s.equals("CONNECTED")) + " negotiated="
        + main.getZookeeperClient().getZooKeeper().getSessionTimeout());
    run("negotiate", () -> {
      StringBuilder b = new StringBuilder();
      for (int ask : new int[] {500, 120_000}) {
        CuratorFramework c = client(server, ask, null);
        b.append(ask).append("->").append(c.getZookeeperClient().getZooKeeper().getSessionTimeout()).append(' ');
        c.close();
      }
      return b.toString().trim();
    });

    String prov = providerUrl("127.0.0.1");
    run("register-provider", () -> {
      dubboCreate(main, p(prov), true);
      return owner(other, prov) + " parents=" + owner(other, "/dubbo/" + IFACE + "/providers")
          + "," + owner(other, "/dubbo/" + IFACE) + "," + owner(other, "/dubbo");
    });
    run("register-provider-again", () -> {
      // Dubbo's createEphemeral(path, faultTolerant): an existing node is deleted and created again.
      try {
        main.create().withMode(CreateMode.EPHEMERAL).forPath(p(prov));
        return "UNEXPECTED created twice";
      } catch (KeeperException.NodeExistsException e) {
        main.delete().forPath(p(prov));
        main.create().withMode(CreateMode.EPHEMERAL).forPath(p(prov));
        return "NodeExists then recreated " + owner(other, prov);
      }
    });
    run("register-consumer", () -> {
      main.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(p(CONSUMER));
      return owner(other, CONSUMER);
    });
    String provDir = "/dubbo/" + IFACE + "/providers";
    run("subscribe", () -> {
      StringBuilder b = new StringBuilder();
      for (String cat : new String[] {"providers", "configurators", "routers"}) {
        String dir = "/dubbo/" + IFACE + "/" + cat;
        try {
          main.create().creatingParentsIfNeeded().forPath(p(dir));
        } catch (KeeperException.NodeExistsException e) {
          // Dubbo creates each category persistent, ignoring an existing one
        }
        List<String> kids = main.getChildren().usingWatcher(new Dubbo.ChildWatcher(main, dir, subs)).forPath(p(dir));
        b.append(cat).append('=').append(urls(kids)).append(' ');
      }
      return b.toString().trim();
    });
    String prov2 = providerUrl("127.0.0.2");
    run("provider-added", () -> {
      other.create().withMode(CreateMode.EPHEMERAL).forPath(p(prov2));
      return "events=" + subs.await(e -> e.contains("127.0.0.2"));
    });
    run("provider-removed", () -> {
      other.delete().forPath(p(prov2));
      return "events=" + subs.await(e -> e.startsWith("NodeChildrenChanged") && !e.contains("127.0.0.2"));
    });

    // The config center: a CuratorCache (Dubbo 3), a TreeCache (Dubbo 2.7)
    // and a NodeCache on one key (Dubbo's data listener).
    main.create().creatingParentsIfNeeded().forPath(p("/dubbo/config"));
    CuratorCache curatorCache = CuratorCache.build(main, p("/dubbo/config"));
    curatorCache.listenable().addListener(new CuratorCacheListener() {
      @Override
      public void event(Type type, ChildData oldData, ChildData d) {
        cc.add(type + " " + data(oldData) + " " + data(d));
      }

      @Override
      public void initialized() {
        cc.add("initialized");
      }
    });
    TreeCache treeCache = TreeCache.newBuilder(main, p("/dubbo/config")).build();
    treeCache.getListenable().addListener((c, e) -> tc.add(e.getType() + " " + data(e.getData())));
    NodeCache nodeCache = new NodeCache(main, p(CONFIG_KEY));
    nodeCache.getListenable().addListener(() -> nc.add("changed " + data(nodeCache.getCurrentData())));
    run("config-caches", () -> {
      nodeCache.start(true); // first: it creates the key's parents, containers
      // Dubbo's global config beside the key: the container is never
      // emptied, so ZooKeeper's timer (a minute) deleting it can play no
      // part in the transcript.
      other.create().forPath(p("/dubbo/config/dubbo/dubbo.properties"), "dubbo.registry.check=false".getBytes());
      curatorCache.start();
      treeCache.start();
      return "curatorcache=" + cc.await(e -> e.equals("initialized")) + " treecache="
          + tc.await(e -> e.startsWith("INITIALIZED")) + " nodecache=" + data(nodeCache.getCurrentData())
          + " parent=" + owner(other, "/dubbo/config/dubbo");
    });
    String[] cfg = {"created", "changed", "deleted"};
    for (String what : cfg) {
      run("config-" + what, () -> {
        switch (what) {
          case "created":
            other.create().creatingParentsIfNeeded().forPath(p(CONFIG_KEY), "timeout: 1000".getBytes());
            break;
          case "changed":
            other.setData().forPath(p(CONFIG_KEY), "timeout: 2000".getBytes());
            break;
          default:
            other.delete().forPath(p(CONFIG_KEY));
        }
        String key = rel(p(CONFIG_KEY));
        return "curatorcache=" + cc.await(e -> e.contains(key)) + " treecache=" + tc.await(e -> e.contains(key))
            + " nodecache=" + nc.await(e -> true);
      });
    }

    run("mapping", () -> {
      String m = "/dubbo/mapping/" + IFACE;
      main.create().creatingParentsIfNeeded().forPath(p(m), APP.getBytes());
      Stat st = new Stat();
      byte[] d = main.getData().storingStatIn(st).forPath(p(m));
      Stat st2 = main.setData().withVersion(st.getVersion()).forPath(p(m), (new String(d) + ",demo-2").getBytes());
      String stale;
      try {
        main.setData().withVersion(st.getVersion()).forPath(p(m), "x".getBytes());
        stale = "UNEXPECTED stale version accepted";
      } catch (KeeperException.BadVersionException e) {
        stale = "BadVersion";
      }
      return "data=" + str(main.getData().forPath(p(m))) + " version=" + st.getVersion() + "->" + st2.getVersion()
          + " stale=" + stale;
    });

    run("metadata", () -> {
      // Dubbo's ZookeeperMetadataReport: createOrUpdate, Curator's
      // create().orSetData() (a create2 when a stat is asked for).
      String m = "/dubbo/metadata/" + IFACE + "/provider/" + APP;
      Stat st = new Stat();
      main.create().orSetData().creatingParentsIfNeeded().storingStatIn(st).forPath(p(m), "{\"v\":1}".getBytes());
      String first = "version=" + st.getVersion() + " dataLength=" + st.getDataLength();
      main.create().orSetData().creatingParentsIfNeeded().storingStatIn(st).forPath(p(m), "{\"v\":22}".getBytes());
      return first + " then version=" + st.getVersion() + " dataLength=" + st.getDataLength() + " data="
          + str(other.getData().forPath(p(m)));
    });
    run("auth", () -> Secure.steps(server, other));
    run("container", () -> {
      // Curator makes containers (x-discovery's service nodes, NodeCache's
      // parents); one that had a child and has none goes at the server's
      // next check (a minute), not at once: looked at right away, it is there.
      String box = "/mapping-box";
      main.create().creatingParentContainersIfNeeded().forPath(p(box + "/key"));
      main.delete().forPath(p(box + "/key"));
      String kept = owner(other, box);
      main.delete().forPath(p(box));
      return "emptied=" + kept;
    });

    // Application-level discovery: Dubbo 3's ZookeeperServiceDiscovery.
    ServiceDiscovery<ZookeeperInstance> sd = discovery(main);
    ServiceCache<ZookeeperInstance> serviceCache = sd.serviceCacheBuilder().name(APP).build();
    serviceCache.addListener(new ServiceCacheListener() {
      @Override
      public void cacheChanged() {
        sc.add("changed " + instances(serviceCache));
      }

      @Override
      public void stateChanged(CuratorFramework c, org.apache.curator.framework.state.ConnectionState st) {
        sc.add("state " + st);
      }
    });
    ServiceInstance<ZookeeperInstance> mine = instance("127.0.0.1", "r1");
    String mineNode = "/services/" + APP + "/127.0.0.1:20880";
    run("discovery-register", () -> {
      sd.registerService(mine);
      ObjectNode json = (ObjectNode) new ObjectMapper().readTree(other.getData().forPath(p(mineNode)));
      boolean hasTime = json.remove("registrationTimeUTC") != null;
      return owner(other, mineNode) + " parent=" + owner(other, "/services/" + APP) + " time=" + hasTime
          + " json=" + json;
    });
    run("service-cache", () -> {
      serviceCache.start();
      return "instances=" + instances(serviceCache);
    });
    ServiceDiscovery<ZookeeperInstance> peer = discovery(other);
    ServiceInstance<ZookeeperInstance> theirs = instance("127.0.0.2", "r1");
    run("discovery-peer", () -> {
      peer.registerService(theirs);
      return "events=" + sc.await(e -> e.contains("127.0.0.2"));
    });
    run("discovery-update", () -> {
      sd.updateService(instance("127.0.0.1", "r2"));
      return "events=" + sc.await(e -> e.contains("127.0.0.1:20880@r2"));
    });

    // The connection drops (the server restarted, a network blip); while
    // the main client is away another app changes what it watches. It must
    // come back to the same session with its ephemeral nodes, and its
    // watches must fire for what it missed.
    String prov3 = providerUrl("127.0.0.3");
    String otherKey = "/dubbo/config/dubbo/demo-consumer.configurators";
    run("reconnect", () -> {
      proxy.cut();
      List<String> down = states.await(s -> s.equals("SUSPENDED"));
      other.create().withMode(CreateMode.EPHEMERAL).forPath(p(prov3));
      other.create().forPath(p(otherKey), "mock: force".getBytes());
      peer.unregisterService(theirs);
      proxy.release();
      List<String> up = states.await(s -> s.equals("RECONNECTED") || s.equals("LOST"));
      String key = rel(p(otherKey));
      return "states=" + down + up + " same-session=" + (sid(main) == mainSid)
          + " subscription=" + subs.await(e -> e.contains("127.0.0.3"))
          + " curatorcache=" + cc.await(e -> e.contains(key))
          + " treecache=" + tc.awaitAll(List.of(e -> e.contains(key), e -> e.startsWith("CONNECTION_RECONNECTED")))
          + " servicecache=" + settled(sc.awaitAll(List.of(e -> e.equals("changed [127.0.0.1:20880@r2]"),
              e -> e.equals("state RECONNECTED"))), "[127.0.0.1:20880@r2]")
          + " provider=" + owner(other, prov) + " consumer=" + owner(other, CONSUMER);
    });

    // A provider away for longer than its session (a partition, a GC
    // pause): the server ends the session and its node goes; Curator
    // makes a new session when it is let back and Dubbo registers again.
    String prov4 = providerUrl("127.0.0.4");
    Support.Events shortStates = new Support.Events("short-states");
    CuratorFramework shortLived = client("127.0.0.1:" + proxy2.port(), 4000, shortStates);
    long shortSid = sid(shortLived);
    run("expire-register", () -> {
      dubboCreate(shortLived, p(prov4), true);
      return "states=" + shortStates.await(s -> s.equals("CONNECTED")) + " negotiated="
          + shortLived.getZookeeperClient().getZooKeeper().getSessionTimeout()
          + " subscription=" + subs.await(e -> e.contains("127.0.0.4"));
    });
    run("expire", () -> {
      proxy2.cut();
      List<String> down = shortStates.await(s -> s.equals("SUSPENDED"));
      List<String> gone = subs.await(e -> !e.contains("127.0.0.4"));
      proxy2.release();
      List<String> back = shortStates.awaitAll(List.of(s -> s.equals("LOST"), s -> s.equals("RECONNECTED")));
      return "states=" + down + back + " same-session=" + (sid(shortLived) == shortSid) + " subscription=" + gone;
    });
    run("expire-recover", () -> {
      dubboCreate(shortLived, p(prov4), true); // Dubbo's recover() on a new session
      String d = "subscription=" + subs.await(e -> e.contains("127.0.0.4"));
      shortLived.close();
      return d + " closed=" + subs.await(e -> !e.contains("127.0.0.4"));
    });

    run("unregister", () -> {
      main.delete().forPath(p(prov));
      String again;
      try {
        main.delete().forPath(p(prov));
        again = "UNEXPECTED deleted twice";
      } catch (KeeperException.NoNodeException e) {
        again = "NoNode";
      }
      main.delete().guaranteed().deletingChildrenIfNeeded().forPath(p("/dubbo/mapping"));
      return "events=" + subs.await(e -> !e.contains("127.0.0.1")) + " again=" + again
          + " mapping=" + owner(other, "/dubbo/mapping")
          // Curator's EnsembleTracker reads /zookeeper/config: a standalone
          // server's must leave the address the app was given alone.
          + " address=" + (main.getZookeeperClient().getCurrentConnectionString().equals("127.0.0.1:" + proxy.port())
              ? "kept" : "changed to " + main.getZookeeperClient().getCurrentConnectionString());
    });

    run("close", () -> {
      String consumers = "/dubbo/" + IFACE + "/consumers";
      Watcher w = e -> seen.add(e.getType() + " " + rel(e.getPath()));
      other.getChildren().usingWatcher(w).forPath(p(consumers));
      other.checkExists().usingWatcher(w).forPath(p(mineNode));
      serviceCache.close();
      sd.close(); // unregisters its instances
      curatorCache.close();
      treeCache.close();
      nodeCache.close();
      main.close(); // ends the session: its ephemeral nodes go
      List<String> evs = seen.await(e -> e.startsWith("NodeChildrenChanged"));
      if (!evs.toString().contains("NodeDeleted") && !timedOut(evs)) {
        evs.addAll(seen.await(e -> e.startsWith("NodeDeleted")));
      }
      return "events=" + sorted(evs) + " consumers=" + urls(other.getChildren().forPath(p(consumers)))
          + " providers=" + urls(other.getChildren().forPath(p(provDir))) + " instance=" + owner(other, mineNode);
    });
    run("leftovers", () -> {
      List<String> left = new ArrayList<>();
      for (Support.Events e : new Support.Events[] {subs, cc, tc, nc, sc, seen, shortStates}) {
        for (String s : e.rest()) {
          // A ServiceCache rebuilds itself after a reconnect as often as
          // its timing makes it: its late changes say nothing of the server.
          if (e != sc || !s.startsWith("changed ")) {
            left.add(e.name + ":" + s);
          }
        }
      }
      return "events=" + left;
    });
    peer.close();
    other.delete().guaranteed().deletingChildrenIfNeeded().forPath(Dubbo.root);
    other.close();
  }
}
