package curatordubbo;

import static curatordubbo.Dubbo.CONSUMER;
import static curatordubbo.Dubbo.IFACE;
import static curatordubbo.Dubbo.client;
import static curatordubbo.Dubbo.dubboCreate;
import static curatordubbo.Dubbo.p;
import static curatordubbo.Dubbo.providerUrl;
import static curatordubbo.Dubbo.rel;
import static curatordubbo.Dubbo.sid;
import static curatordubbo.Support.urls;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

/**
 * The server restarts under a Dubbo app (Main HOST:PORT ROOT restart): the
 * app's provider, consumer, subscription watcher and a CuratorCache on
 * its providers; at "pause restart" the program waits for a line on
 * stdin while the caller restarts the server on the same address. Then
 * the app must be back in its session, its nodes there, its watches set
 * again. For a server that keeps sessions across restarts (the agent's
 * front end with a session store, or ZooKeeper with its data dir).
 */
final class Restart {
  private Restart() {}

  static String owner(CuratorFramework c, String path, long mainSid) throws Exception {
    Stat st = c.checkExists().forPath(p(path));
    return st == null ? "absent" : st.getEphemeralOwner() == mainSid ? "ephemeral(main)" : "other";
  }

  static void steps(String server) throws Exception {
    Support.Events states = new Support.Events("states");
    Support.Events subs = new Support.Events("subscription");
    Support.Events cc = new Support.Events("curatorcache");
    CuratorFramework main = client(server, 60_000, states);
    long mainSid = sid(main);
    String provDir = "/dubbo/" + IFACE + "/providers";
    String prov = providerUrl("127.0.0.1");
    Main.run("register", () -> {
      dubboCreate(main, p(prov), true);
      main.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(p(CONSUMER));
      List<String> kids = main.getChildren().usingWatcher(new Dubbo.ChildWatcher(main, provDir, subs)).forPath(p(provDir));
      return "states=" + states.await(s -> s.equals("CONNECTED")) + " providers=" + urls(kids);
    });
    // On the service, not on its providers: ZooKeeper 3.6 to 3.8 keep one
    // watch mode per path and session (ZOOKEEPER-4466), and the
    // subscription's one-shot child watch on providers would be lost.
    CuratorCache cache = CuratorCache.build(main, p("/dubbo/" + IFACE));
    cache.listenable().addListener(new CuratorCacheListener() {
      @Override
      public void event(Type type, ChildData oldData, ChildData d) {
        cc.add(type + " " + (d == null ? rel(oldData.getPath()) : urls(List.of(d.getPath().substring(d.getPath().lastIndexOf('/') + 1)))));
      }

      @Override
      public void initialized() {
        cc.add("initialized");
      }
    });
    Main.run("cache", () -> {
      cache.start();
      return "curatorcache=" + cc.await(e -> e.equals("initialized"));
    });

    System.out.println("pause restart");
    System.out.flush();
    String line = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
    if (line == null) {
      Main.run("restart", () -> "UNEXPECTED stdin closed");
      main.close();
      return;
    }
    CuratorFramework other = client(server, 30_000, null);
    Main.run("restart", () -> {
      List<String> st = states.awaitAll(List.of(s -> s.equals("SUSPENDED"), s -> s.equals("RECONNECTED")));
      return "states=" + st + " same-session=" + (sid(main) == mainSid) + " provider=" + owner(other, prov, mainSid)
          + " consumer=" + owner(other, CONSUMER, mainSid);
    });
    Main.run("watch-after-restart", () -> {
      other.create().withMode(CreateMode.EPHEMERAL).forPath(p(providerUrl("127.0.0.2")));
      List<String> s = subs.await(e -> e.contains("127.0.0.2"));
      return "subscription=" + s.stream().filter(e -> e.contains("127.0.0.2") || e.equals("TIMEOUT")).findFirst().orElse("")
          + " curatorcache=" + cc.await(e -> e.contains("127.0.0.2"));
    });
    Main.run("close", () -> {
      cache.close();
      main.close();
      List<String> kids = other.getChildren().forPath(p(provDir));
      return "providers=" + urls(kids) + " consumer=" + owner(other, CONSUMER, mainSid);
    });
    other.delete().guaranteed().deletingChildrenIfNeeded().forPath(Dubbo.root);
    other.close();
  }
}
