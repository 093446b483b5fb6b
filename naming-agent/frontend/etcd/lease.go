package etcd

import (
	"context"
	"errors"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// leaseServer is etcd's Lease service: the apps' leases are the
// upstream's own, so a registration on a lease ends when the real etcd
// ends the lease.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return l.s.lease.LeaseGrant(l.s.fwd(ctx), r)
}

func (l leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return l.s.lease.LeaseRevoke(l.s.fwd(ctx), r)
}

func (l leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := l.s.lease.LeaseTimeToLive(l.s.fwd(ctx), r)
	if err != nil {
		return nil, err
	}
	for i, k := range resp.Keys { // the apps' keys, not their markers
		if rest, ok := strings.CutPrefix(string(k), l.s.markers); ok {
			resp.Keys[i] = []byte(rest)
		}
	}
	return resp, nil
}

func (l leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	return l.s.lease.LeaseLeases(l.s.fwd(ctx), r)
}

// LeaseKeepAlive relays the app's keep-alives and their answers.
func (l leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx, cancel := context.WithCancel(l.s.fwd(stream.Context()))
	defer cancel()
	up, err := l.s.lease.LeaseKeepAlive(ctx)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if err := up.Send(r); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() {
		for {
			r, err := up.Recv()
			if err != nil {
				errc <- err
				return
			}
			if err := stream.Send(r); err != nil {
				errc <- err
				return
			}
		}
	}()
	err = <-errc
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
