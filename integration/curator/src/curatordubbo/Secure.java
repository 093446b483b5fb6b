package curatordubbo;

import static curatordubbo.Dubbo.IFACE;
import static curatordubbo.Dubbo.p;
import static curatordubbo.Dubbo.providerUrl;
import static curatordubbo.Dubbo.rel;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.ACLProvider;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.ACL;

/**
 * A registry address with user information (zookeeper://dubbo:secret@...):
 * Dubbo's CuratorZookeeperClient adds digest authentication and makes every
 * node CREATOR_ALL_ACL, which the server turns into the session's digest
 * identity. What the server stores and answers is compared; whether it
 * refuses other sessions is not (the front end keeps ACLs without
 * enforcing them: see its README).
 */
final class Secure {
  private Secure() {}

  static String acls(List<ACL> l) {
    List<String> out = new ArrayList<>();
    for (ACL a : l) {
      out.add(a.getId().getScheme() + ":" + a.getId().getId() + "/" + a.getPerms());
    }
    return out.toString();
  }

  static String steps(String server, CuratorFramework other) throws Exception {
    ACLProvider creatorAll = new ACLProvider() {
      @Override
      public List<ACL> getDefaultAcl() {
        return ZooDefs.Ids.CREATOR_ALL_ACL;
      }

      @Override
      public List<ACL> getAclForPath(String path) {
        return ZooDefs.Ids.CREATOR_ALL_ACL;
      }
    };
    CuratorFramework c = CuratorFrameworkFactory.builder().connectString(server)
        .retryPolicy(new RetryNTimes(1, 1000)).connectionTimeoutMs((int) Support.WAIT_MS).sessionTimeoutMs(30_000)
        .authorization("digest", "dubbo:secret".getBytes(StandardCharsets.UTF_8)).aclProvider(creatorAll).build();
    c.start();
    try {
      if (!c.blockUntilConnected((int) Support.WAIT_MS, TimeUnit.MILLISECONDS)) {
        return "UNEXPECTED not connected";
      }
      String prov = "/secure" + providerUrl("127.0.0.1");
      c.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(p(prov));
      String dir = "/secure/dubbo/" + IFACE + "/providers";
      List<String> who = new ArrayList<>();
      for (ClientInfo i : c.getZookeeperClient().getZooKeeper().whoAmI()) {
        who.add(i.getAuthScheme() + ":" + i.getUser());
      }
      String d = "whoami=" + Support.sorted(who) + " node="
          + acls(c.getACL().forPath(p(prov))) + " parent=" + acls(c.getACL().forPath(p(dir)))
          + " children=" + Support.urls(c.getChildren().forPath(p(dir)));
      // Dubbo's open ACL on a node it did not make stays as it was.
      d += " root=" + acls(other.getACL().forPath(p(""))) + " path=" + rel(p(dir));
      c.delete().deletingChildrenIfNeeded().forPath(p("/secure"));
      return d;
    } finally {
      c.close();
    }
  }
}
