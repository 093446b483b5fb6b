package nacostestserver

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
	typeServerCheck       = "ServerCheckRequest"
	typeConnectionSetup   = "ConnectionSetupRequest"
	typeHealthCheck       = "HealthCheckRequest"
	typeInstance          = "InstanceRequest"
	typeBatchInstance     = "BatchInstanceRequest"
	typeServiceQuery      = "ServiceQueryRequest"
	typeSubscribeService  = "SubscribeServiceRequest"
	typeNotifySubscriber  = "NotifySubscriberRequest"
	typeConnectReset      = "ConnectResetRequest"
	typeServerCheckResp   = "ServerCheckResponse"
	typeHealthCheckResp   = "HealthCheckResponse"
	typeInstanceResp      = "InstanceResponse"
	typeBatchInstanceResp = "BatchInstanceResponse"
	typeQueryServiceResp  = "QueryServiceResponse"
	typeSubscribeResp     = "SubscribeServiceResponse"
	typeErrorResp         = "ErrorResponse"
)

// Nacos error codes the SDK acts on.
const (
	codeOK           = 200
	codeBadRequest   = 400
	codeServerError  = 500
	codeUnregistered = 301 // NacosException.UN_REGISTER: the SDK reconnects
	codeNoHandler    = 302 // NacosException.NO_HANDLER
)

// Default names Nacos fills in.
const (
	defaultNamespace = "public"
	defaultGroup     = "DEFAULT_GROUP"
	defaultCluster   = "DEFAULT"
	groupSeparator   = "@@"
)

// namingRequest is the union of the JSON bodies of the naming requests
// the SDK sends (rpc_request.InstanceRequest, BatchInstanceRequest,
// ServiceQueryRequest, SubscribeServiceRequest): one struct, since each
// carries a subset of these fields.
type namingRequest struct {
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
}

// setupRequest is rpc_request.ConnectionSetupRequest.
type setupRequest struct {
	ClientVersion string            `json:"clientVersion"`
	Tenant        string            `json:"tenant"`
	Labels        map[string]string `json:"labels"`
}

// response is rpc_response.Response, the fields every response has.
type response struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId"`
}

func ok(requestID string) response {
	return response{ResultCode: codeOK, Success: true, RequestID: requestID}
}

type serverCheckResponse struct {
	response
	ConnectionID string `json:"connectionId"`
}

type serviceResponse struct {
	response
	ServiceInfo model.Service `json:"serviceInfo"`
}

type notifyRequest struct {
	RequestID   string        `json:"requestId"`
	Namespace   string        `json:"namespace"`
	ServiceName string        `json:"serviceName"`
	GroupName   string        `json:"groupName"`
	Module      string        `json:"module"`
	ServiceInfo model.Service `json:"serviceInfo"`
}

// resetRequest is rpc_request.ConnectResetRequest (its server fields have
// no JSON tags).
type resetRequest struct {
	RequestID  string `json:"requestId"`
	Module     string `json:"module"`
	ServerIP   string `json:"ServerIp"`
	ServerPort string `json:"ServerPort"`
}

// encode wraps body as a Payload of type typ, as the SDK's convertRequest
// and convertResponse do: JSON in an Any without a type URL.
func encode(typ string, body any) *pb.Payload {
	b, err := json.Marshal(body)
	if err != nil {
		// Every body is a struct of strings, numbers, maps and slices.
		panic(fmt.Sprintf("nacostestserver: encode %s: %v", typ, err))
	}
	return &pb.Payload{Metadata: &pb.Metadata{Type: typ}, Body: &anypb.Any{Value: b}}
}

// errorPayload is the ErrorResponse Nacos answers a failed request with.
func errorPayload(requestID string, code int, msg string) *pb.Payload {
	return encode(typeErrorResp, response{
		ResultCode: codeServerError, ErrorCode: code, Message: msg, RequestID: requestID,
	})
}

func decode(p *pb.Payload, into any) error {
	if err := json.Unmarshal(p.GetBody().GetValue(), into); err != nil {
		return fmt.Errorf("decode %s: %w", p.GetMetadata().GetType(), err)
	}
	return nil
}
