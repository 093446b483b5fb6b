package curatordubbo;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** What the steps share: a transcript, event queues, a cuttable TCP proxy. */
final class Support {
  private Support() {}

  /** Every wait for something that should come at once is bounded by this. */
  static final long WAIT_MS = 20_000;

  static int failures;

  /** step prints one transcript line: "step NAME ok|fail DETAIL". */
  static synchronized void step(String name, boolean ok, String detail) {
    if (!ok) {
      failures++;
    }
    System.out.println("step " + name + (ok ? " ok " : " fail ") + detail);
    System.out.flush();
  }

  /** Short names for Dubbo URLs in node names: "dubbo://127.0.0.1:20880". */
  static String urls(List<String> names) {
    List<String> out = new ArrayList<>();
    for (String n : names) {
      String u = URLDecoder.decode(n, StandardCharsets.UTF_8);
      int q = u.indexOf('/', u.indexOf("://") + 3);
      out.add(q > 0 ? u.substring(0, q) : u);
    }
    Collections.sort(out);
    return out.toString();
  }

  static String sorted(List<String> l) {
    List<String> c = new ArrayList<>(l);
    Collections.sort(c);
    return c.toString();
  }

  static String str(byte[] b) {
    return b == null ? "null" : "'" + new String(b, StandardCharsets.UTF_8) + "'";
  }

  /** Events is what one listener saw, in the order it saw it. */
  static final class Events {
    private final LinkedBlockingQueue<String> q = new LinkedBlockingQueue<>();
    final String name;

    Events(String name) {
      this.name = name;
    }

    void add(String e) {
      q.add(e);
    }

    /**
     * await takes the events up to and including the first that until
     * accepts and returns them sorted (listeners on several threads); on
     * timeout the list ends with "TIMEOUT".
     */
    List<String> await(Predicate<String> until) throws InterruptedException {
      return awaitAll(List.of(until));
    }

    /**
     * awaitAll takes events until each of untils has accepted one (events
     * that come from different client threads, in an order that depends
     * on timing: a reconnect's state and the watch events it brings).
     */
    List<String> awaitAll(List<Predicate<String>> untils) throws InterruptedException {
      List<Predicate<String>> left = new ArrayList<>(untils);
      List<String> got = new ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
      while (!left.isEmpty()) {
        long wait = deadline - System.nanoTime();
        String e = wait > 0 ? q.poll(wait, TimeUnit.NANOSECONDS) : null;
        if (e == null) {
          Collections.sort(got);
          got.add("TIMEOUT");
          return got;
        }
        got.add(e);
        left.removeIf(p -> p.test(e));
      }
      Collections.sort(got);
      return got;
    }

    /** rest takes what is queued now, without waiting. */
    List<String> rest() {
      List<String> got = new ArrayList<>();
      q.drainTo(got);
      return got;
    }
  }

  static boolean timedOut(List<String> evs) {
    return !evs.isEmpty() && evs.get(evs.size() - 1).equals("TIMEOUT");
  }

  /**
   * Proxy forwards 127.0.0.1:port() to the server. cut() closes every
   * connection and refuses new ones (accepted, then closed at once) until
   * release(): the client sees its connection lost, as when the server
   * restarts, and comes back to the same server.
   */
  static final class Proxy implements AutoCloseable {
    private final ServerSocket ss;
    private final InetSocketAddress target;
    private final List<Socket> live = new ArrayList<>();
    private boolean held;

    Proxy(String server) throws IOException {
      int colon = server.lastIndexOf(':');
      target = new InetSocketAddress(server.substring(0, colon), Integer.parseInt(server.substring(colon + 1)));
      ss = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
      Thread t = new Thread(this::acceptLoop, "proxy-accept");
      t.setDaemon(true);
      t.start();
    }

    int port() {
      return ss.getLocalPort();
    }

    private void acceptLoop() {
      while (true) {
        Socket in;
        try {
          in = ss.accept();
        } catch (IOException e) {
          return; // closed
        }
        synchronized (this) {
          if (held) {
            closeQuietly(in);
            continue;
          }
        }
        Socket out = new Socket();
        try {
          out.connect(target, (int) WAIT_MS);
        } catch (IOException e) {
          closeQuietly(in);
          closeQuietly(out);
          continue;
        }
        synchronized (this) {
          live.add(in);
          live.add(out);
        }
        pump(in, out);
        pump(out, in);
      }
    }

    private static void pump(Socket from, Socket to) {
      Thread t = new Thread(() -> {
        byte[] buf = new byte[16 << 10];
        try (InputStream r = from.getInputStream(); OutputStream w = to.getOutputStream()) {
          for (int n; (n = r.read(buf)) >= 0; ) {
            w.write(buf, 0, n);
            w.flush();
          }
        } catch (IOException e) {
          // cut or closed: close both below
        }
        closeQuietly(from);
        closeQuietly(to);
      }, "proxy-pump");
      t.setDaemon(true);
      t.start();
    }

    synchronized void cut() {
      held = true;
      for (Socket s : live) {
        closeQuietly(s);
      }
      live.clear();
    }

    synchronized void release() {
      held = false;
    }

    @Override
    public void close() {
      closeQuietly(ss);
      cut();
    }
  }

  static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception e) {
      // nothing to do
    }
  }
}
