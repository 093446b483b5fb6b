package curatordubbo;

import java.util.Map;
import java.util.TreeMap;

/**
 * The payload Dubbo 3 writes in an x-discovery ServiceInstance
 * (org.apache.dubbo.registry.zookeeper.ZookeeperInstance): the instance's
 * id, its application and its metadata (dubbo.endpoints,
 * dubbo.metadata.revision, ...).
 */
public class ZookeeperInstance {
  private String id;
  private String name;
  private Map<String, String> metadata = new TreeMap<>();

  public ZookeeperInstance() {}

  ZookeeperInstance(String id, String name, Map<String, String> metadata) {
    this.id = id;
    this.name = name;
    this.metadata = new TreeMap<>(metadata);
  }

  public String getId() {
    return id;
  }

  public void setId(String id) {
    this.id = id;
  }

  public String getName() {
    return name;
  }

  public void setName(String name) {
    this.name = name;
  }

  public Map<String, String> getMetadata() {
    return metadata;
  }

  public void setMetadata(Map<String, String> metadata) {
    this.metadata = new TreeMap<>(metadata);
  }
}
