package shim_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// A gRPC client of the service "greeter", wherever the agent says it is.
// The app's own retry policy is given to the shim, which applies it only
// while the mesh does not carry the service.
func ExampleClient_DialOptions() {
	c, err := shim.New(shim.Default()) // the agent on 127.0.0.1:7701
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	opts := c.DialOptions(shim.WithServiceConfig(`{"methodConfig":[{"name":[{}],"retryPolicy":{
		"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`))
	conn, err := grpc.NewClient("detour:///greeter", append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	log.Println(err)
}

// An HTTP client of the service "greeter", with a retry loop that leaves
// retries to the sidecar while the mesh carries the service.
func ExampleClient_Transport() {
	c, err := shim.New(shim.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tr := c.Transport()
	defer tr.Close()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}

	req, _ := http.NewRequest(http.MethodGet, "http://greeter/hello", nil)
	for attempt := 0; ; attempt++ {
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			log.Println(resp.Status)
			return
		}
		if attempt >= tr.Retries(req, 2) { // 0 while the sidecar retries for us
			log.Println(err)
			return
		}
	}
}

// An HTTP app on port 8080 publishes itself as "greeter" for as long as
// it runs; the Client publishes it again if the agent restarts.
func ExampleClient_Publish() {
	c, err := shim.New(shim.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // unpublishes
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub, err := c.Publish(ctx, shim.PublishRequest{
		Service: "greeter", Port: 8080, Protocol: "http",
		Health: shim.HealthCheck{Type: "http", Path: "/healthz"},
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("registered as", pub.RegisteredAddr)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// Watch follows the agent's answers for a service.
func ExampleClient_Watch() {
	c, err := shim.New(shim.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	updates, err := c.Watch(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	for u := range updates {
		if u.Err != nil {
			log.Println("agent:", u.Err)
			continue
		}
		log.Println(u.Answer.Endpoints, "mesh:", u.Answer.Mesh, "fallback:", u.Answer.Fallback)
	}
}

// A plain TCP client of the service "lines": the connection goes through
// the local sidecar while the mesh carries the service, to an endpoint
// otherwise, and to a fallback endpoint at once if the sidecar has just
// died. After a broken connection, dial again.
func ExampleClient_Dial() {
	c, err := shim.New(shim.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, "lines")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintln(conn, "hello")
	answer, err := bufio.NewReader(conn).ReadString('\n')
	log.Println(answer, err)
}
