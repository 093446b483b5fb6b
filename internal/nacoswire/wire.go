// Package nacoswire is the Nacos 2.x gRPC wire as nacos-sdk-go v2 speaks
// it: the payload type names, the JSON bodies of the naming requests and
// responses, and the Payload envelope (JSON in a protobuf Any without a
// type URL). The in-repo Nacos test server and the agent's Nacos front
// end both use it, so they decode and answer alike.
package nacoswire

import (
	"encoding/json"
	"fmt"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"google.golang.org/protobuf/types/known/anypb"
)

// Payload type names, as the SDK's rpc_request and rpc_response packages
// spell them in Metadata.Type.
const (
	TypeServerCheck       = "ServerCheckRequest"
	TypeConnectionSetup   = "ConnectionSetupRequest"
	TypeHealthCheck       = "HealthCheckRequest"
	TypeInstance          = "InstanceRequest"
	TypeBatchInstance     = "BatchInstanceRequest"
	TypeServiceQuery      = "ServiceQueryRequest"
	TypeSubscribeService  = "SubscribeServiceRequest"
	TypeServiceList       = "ServiceListRequest"
	TypeNotifySubscriber  = "NotifySubscriberRequest"
	TypeConnectReset      = "ConnectResetRequest"
	TypeServerCheckResp   = "ServerCheckResponse"
	TypeHealthCheckResp   = "HealthCheckResponse"
	TypeInstanceResp      = "InstanceResponse"
	TypeBatchInstanceResp = "BatchInstanceResponse"
	TypeQueryServiceResp  = "QueryServiceResponse"
	TypeSubscribeResp     = "SubscribeServiceResponse"
	TypeServiceListResp   = "ServiceListResponse"
	TypeErrorResp         = "ErrorResponse"
)

// Nacos result and error codes the SDK acts on.
const (
	CodeOK           = 200
	CodeBadRequest   = 400
	CodeServerError  = 500
	CodeUnregistered = 301 // NacosException.UN_REGISTER: the SDK reconnects
	CodeNoHandler    = 302 // NacosException.NO_HANDLER
)

// Default names Nacos fills in.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
	GroupSeparator   = "@@"
)

// ClusterKey is the metadata key under which an instance's Nacos cluster
// travels through registries that have no clusters (etcd, ZooKeeper):
// the agent's Nacos front end writes it, and the Nacos adapter registers
// an endpoint carrying it in that cluster (and adds it to an instance of
// another cluster than DEFAULT it reads), so the cluster an app gave is
// the one every host's apps see.
const ClusterKey = "nacos.cluster"

// Heartbeat fields Nacos reports on every instance (milliseconds): the
// 1.x client beats every 5 s; 15 s without one makes an ephemeral
// instance unhealthy, 30 s removes it.
const (
	HeartBeatInterval = 5000
	HeartBeatTimeout  = 15000
	IPDeleteTimeout   = 30000
)

// NamingRequest is the union of the JSON bodies of the naming requests
// the SDK sends (rpc_request.InstanceRequest, BatchInstanceRequest,
// ServiceQueryRequest, SubscribeServiceRequest, ServiceListRequest): one
// struct, since each carries a subset of these fields.
type NamingRequest struct {
	RequestID   string           `json:"requestId"`
	Namespace   string           `json:"namespace"`
	ServiceName string           `json:"serviceName"`
	GroupName   string           `json:"groupName"`
	Type        string           `json:"type"`
	Instance    model.Instance   `json:"instance"`
	Instances   []model.Instance `json:"instances"`
	Cluster     string           `json:"cluster"`
	HealthyOnly bool             `json:"healthyOnly"`
	Subscribe   bool             `json:"subscribe"`
	Clusters    string           `json:"clusters"`
	PageNo      int              `json:"pageNo"`
	PageSize    int              `json:"pageSize"`
}

// SetupRequest is rpc_request.ConnectionSetupRequest.
type SetupRequest struct {
	ClientVersion string            `json:"clientVersion"`
	Tenant        string            `json:"tenant"`
	Labels        map[string]string `json:"labels"`
}

// Response is rpc_response.Response, the fields every response has.
type Response struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId"`
}

// OK is a successful Response to requestID.
func OK(requestID string) Response {
	return Response{ResultCode: CodeOK, Success: true, RequestID: requestID}
}

// ServerCheckResponse hands the client its connection ID.
type ServerCheckResponse struct {
	Response
	ConnectionID string `json:"connectionId"`
}

// ServiceResponse is QueryServiceResponse and SubscribeServiceResponse.
type ServiceResponse struct {
	Response
	ServiceInfo model.Service `json:"serviceInfo"`
}

// ServiceListResponse is one page of a namespace's and group's services.
type ServiceListResponse struct {
	Response
	Count        int      `json:"count"`
	ServiceNames []string `json:"serviceNames"`
}

// NotifyRequest is the NotifySubscriberRequest a server pushes.
type NotifyRequest struct {
	RequestID   string        `json:"requestId"`
	Namespace   string        `json:"namespace"`
	ServiceName string        `json:"serviceName"`
	GroupName   string        `json:"groupName"`
	Module      string        `json:"module"`
	ServiceInfo model.Service `json:"serviceInfo"`
}

// ResetRequest is rpc_request.ConnectResetRequest (its server fields have
// no JSON tags).
type ResetRequest struct {
	RequestID  string `json:"requestId"`
	Module     string `json:"module"`
	ServerIP   string `json:"ServerIp"`
	ServerPort string `json:"ServerPort"`
}

// Encode wraps body as a Payload of type typ, as the SDK's convertRequest
// and convertResponse do: JSON in an Any without a type URL.
func Encode(typ string, body any) *pb.Payload {
	b, err := json.Marshal(body)
	if err != nil {
		// Every body is a struct of strings, numbers, maps and slices.
		panic(fmt.Sprintf("nacoswire: encode %s: %v", typ, err))
	}
	return &pb.Payload{Metadata: &pb.Metadata{Type: typ}, Body: &anypb.Any{Value: b}}
}

// ErrorPayload is the ErrorResponse Nacos answers a failed request with.
func ErrorPayload(requestID string, code int, msg string) *pb.Payload {
	return Encode(TypeErrorResp, Response{
		ResultCode: CodeServerError, ErrorCode: code, Message: msg, RequestID: requestID,
	})
}

// Decode reads p's JSON body into into.
func Decode(p *pb.Payload, into any) error {
	if err := json.Unmarshal(p.GetBody().GetValue(), into); err != nil {
		return fmt.Errorf("decode %s: %w", p.GetMetadata().GetType(), err)
	}
	return nil
}

// GroupedName is Nacos's "group@@service".
func GroupedName(group, service string) string { return group + GroupSeparator + service }
