// Package dubbourltest holds provider URLs as real Dubbo and dubbo-go
// versions register them, for the tests of everything that reads them.
package dubbourltest

// Provider URLs as Dubbo and dubbo-go register them (decoded).
const (
	// Dubbo 2.7 (Java), dubbo protocol.
	Dubbo27 = "dubbo://192.168.1.7:20880/org.apache.dubbo.demo.DemoService?anyhost=true&application=dubbo-demo-api-provider&default=true&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=org.apache.dubbo.demo.DemoService&metadata-type=remote&methods=sayHello,sayHelloAsync&pid=45271&release=&side=provider&timestamp=1610262555945"
	// Dubbo 3.2 (Java), Triple protocol.
	Dubbo3Tri = "tri://192.168.31.5:50051/org.apache.dubbo.samples.api.GreetingsService?application=first-dubbo-provider&background=false&deprecated=false&dubbo=2.0.2&dynamic=true&executor-management-mode=isolation&file-cache=true&generic=false&interface=org.apache.dubbo.samples.api.GreetingsService&methods=sayHi&pid=12345&prefer.serialization=fastjson2,hessian2&release=3.2.0&service-name-mapping=true&side=provider&timestamp=1690000000000"
	// Dubbo 2.7 with group, version and weight.
	DubboGroup = "dubbo://10.20.30.40:20880/com.foo.BarService?anyhost=true&application=bar&group=g1&interface=com.foo.BarService&methods=bar,baz&revision=1.0.0&side=provider&timestamp=1600000000000&version=1.0.0&weight=200"
	// dubbo-go 3.x, Triple protocol (timestamp in seconds).
	DubboGo = "tri://192.168.1.2:20000/com.apache.dubbo.sample.basic.IGreeter?anyhost=true&app.version=&application=dubbo.io&bean.name=GreeterProvider&cluster=failover&environment=&export=true&interface=com.apache.dubbo.sample.basic.IGreeter&loadbalance=random&message_size=4&metadata-type=local&methods=SayHello,SayHelloStream&module=sample&name=dubbo.io&organization=dubbo-go&owner=dubbo-go&pid=12345&registry=zookeeper&registry.role=3&release=dubbo-golang-3.0.0&service.filter=echo,token,accesslog,tps,generic_service,execute,pshutdown&side=provider&ssl-enabled=false&timestamp=1650000000&warmup=100"
	// Dubbo 2.6 (com.alibaba), disabled by an operator.
	Dubbo26Disabled = "dubbo://172.16.0.9:20880/com.alibaba.Svc?anyhost=true&application=legacy&disabled=true&dubbo=2.6.2&generic=false&interface=com.alibaba.Svc&methods=get&pid=777&side=provider&timestamp=1500000000000"
)
