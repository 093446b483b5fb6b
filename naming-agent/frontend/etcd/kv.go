package etcd

import (
	"bytes"
	"context"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// kvServer is etcd's KV service: pass-through keys go to the upstream
// as they are; service keys are translated (see the package doc).
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return k.s.rangeKeys(ctx, r)
}

func (s *Server) rangeKeys(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	key, end := string(r.Key), string(r.RangeEnd)
	if end == "" && s.owned.has(key) {
		return s.rangeMarker(ctx, r)
	}
	rs, ok := readOf(s.layouts, s.cfg.StatePrefix, key, end)
	if !ok {
		return s.kv.Range(s.fwd(ctx), r)
	}
	v := s.views.get(rs)
	defer s.views.release(v)
	v.waitKnown(ctx)
	// The upstream's answer without limit: the merged one is cut after.
	up := proto.Clone(r).(*pb.RangeRequest)
	up.Limit, up.CountOnly, up.SortOrder, up.SortTarget = 0, false, pb.RangeRequest_NONE, pb.RangeRequest_KEY
	resp, err := s.kv.Range(s.fwd(ctx), up)
	if err != nil {
		return nil, err
	}
	rev := r.Revision
	if rev <= 0 {
		rev = resp.Header.Revision
	}
	kvs := resp.Kvs
	for _, kv := range s.views.at(ctx, v, rev).kvs {
		if keep(r, kv) {
			kvs = append(kvs, cut(r, kv))
		}
	}
	sortKVs(r, kvs)
	out := &pb.RangeResponse{Header: resp.Header, Count: int64(len(kvs))}
	if r.CountOnly {
		return out, nil
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs, out.More = kvs[:r.Limit], true
	}
	out.Kvs = kvs
	return out, nil
}

// keep applies a Range's revision filters to a rendered key.
func keep(r *pb.RangeRequest, kv *mvccpb.KeyValue) bool {
	return (r.MinModRevision == 0 || kv.ModRevision >= r.MinModRevision) &&
		(r.MaxModRevision == 0 || kv.ModRevision <= r.MaxModRevision) &&
		(r.MinCreateRevision == 0 || kv.CreateRevision >= r.MinCreateRevision) &&
		(r.MaxCreateRevision == 0 || kv.CreateRevision <= r.MaxCreateRevision)
}

func cut(r *pb.RangeRequest, kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if !r.KeysOnly {
		return kv
	}
	c := proto.Clone(kv).(*mvccpb.KeyValue)
	c.Value = nil
	return c
}

// sortKVs sorts as etcd does: by key ascending unless asked otherwise.
func sortKVs(r *pb.RangeRequest, kvs []*mvccpb.KeyValue) {
	less := func(a, b *mvccpb.KeyValue) int {
		switch r.SortTarget {
		case pb.RangeRequest_VERSION:
			return cmp64(a.Version, b.Version)
		case pb.RangeRequest_CREATE:
			return cmp64(a.CreateRevision, b.CreateRevision)
		case pb.RangeRequest_MOD:
			return cmp64(a.ModRevision, b.ModRevision)
		case pb.RangeRequest_VALUE:
			return bytes.Compare(a.Value, b.Value)
		}
		return bytes.Compare(a.Key, b.Key)
	}
	sort.SliceStable(kvs, func(i, j int) bool {
		c := less(kvs[i], kvs[j])
		if r.SortOrder == pb.RangeRequest_DESCEND {
			return c > 0
		}
		if c == 0 {
			return bytes.Compare(kvs[i].Key, kvs[j].Key) < 0
		}
		return c < 0
	})
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rangeMarker reads an app's own registration key back.
func (s *Server) rangeMarker(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	up := proto.Clone(r).(*pb.RangeRequest)
	up.Key = []byte(s.owned.marker(string(r.Key)))
	resp, err := s.kv.Range(s.fwd(ctx), up)
	if err != nil {
		return nil, err
	}
	s.unmarkKVs(resp.Kvs)
	return resp, nil
}

func (s *Server) unmarkKVs(kvs []*mvccpb.KeyValue) {
	for _, kv := range kvs {
		if kv != nil {
			kv.Key = bytes.TrimPrefix(kv.Key, []byte(s.markers))
		}
	}
}

func (k kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if !k.s.owned.has(string(r.Key)) && !r.IgnoreValue {
		if _, isReg := k.s.classify(string(r.Key), r.Value, r.Lease); !isReg {
			return k.s.kv.Put(k.s.fwd(ctx), r) // a pass-through key: as it is
		}
	}
	resp, err := k.s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: r}}}})
	if err != nil {
		return nil, err
	}
	out := resp.Responses[0].GetResponsePut()
	out.Header = resp.Header
	return out, nil
}

func (k kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if len(r.RangeEnd) > 0 || !k.s.owned.has(string(r.Key)) {
		return k.s.kv.DeleteRange(k.s.fwd(ctx), r)
	}
	resp, err := k.s.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}}})
	if err != nil {
		return nil, err
	}
	out := resp.Responses[0].GetResponseDeleteRange()
	out.Header = resp.Header
	return out, nil
}

func (k kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return k.s.Txn(ctx, r)
}

func (k kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	return k.s.kv.Compact(k.s.fwd(ctx), r)
}

// Txn sends r upstream with this host's apps' registration keys in it
// turned into their markers: a service key's put is a put of its marker
// (on the same lease; following the markers publishes it), its delete
// the marker's delete, and compares on it compare the marker. A request
// with no service key goes upstream unchanged.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	up := proto.Clone(r).(*pb.TxnRequest)
	var notes []func()
	changed := false
	for _, c := range up.Compare {
		if s.owned.has(string(c.Key)) && len(c.RangeEnd) == 0 {
			c.Key, changed = []byte(s.owned.marker(string(c.Key))), true
		}
	}
	var mark func(ops []*pb.RequestOp)
	mark = func(ops []*pb.RequestOp) {
		for _, op := range ops {
			switch o := op.Request.(type) {
			case *pb.RequestOp_RequestPut:
				p := o.RequestPut
				key := string(p.Key)
				reg, isReg := s.classify(key, p.Value, p.Lease)
				if p.IgnoreValue && s.owned.has(key) {
					isReg = true
				}
				if isReg {
					p.Key, changed = []byte(s.owned.marker(key)), true
					if !p.IgnoreValue {
						notes = append(notes, func() { s.owned.note(key, reg) })
					}
				}
			case *pb.RequestOp_RequestDeleteRange:
				d := o.RequestDeleteRange
				if len(d.RangeEnd) == 0 && s.owned.has(string(d.Key)) {
					d.Key, changed = []byte(s.owned.marker(string(d.Key))), true
				}
			case *pb.RequestOp_RequestRange:
				q := o.RequestRange
				if len(q.RangeEnd) == 0 && s.owned.has(string(q.Key)) {
					q.Key, changed = []byte(s.owned.marker(string(q.Key))), true
				}
			case *pb.RequestOp_RequestTxn:
				mark(o.RequestTxn.Success)
				mark(o.RequestTxn.Failure)
			}
		}
	}
	mark(up.Success)
	mark(up.Failure)
	if !changed {
		return s.kv.Txn(s.fwd(ctx), r)
	}
	resp, err := s.kv.Txn(s.fwd(ctx), up)
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		n() // a note for an op of the branch not taken is undone by following
	}
	s.unmarkTxn(resp)
	return resp, nil
}

// unmarkTxn turns markers in a Txn's answers back into the app's keys.
func (s *Server) unmarkTxn(resp *pb.TxnResponse) {
	for _, op := range resp.Responses {
		switch o := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			s.unmarkKVs(o.ResponseRange.Kvs)
		case *pb.ResponseOp_ResponsePut:
			if o.ResponsePut.PrevKv != nil {
				s.unmarkKVs([]*mvccpb.KeyValue{o.ResponsePut.PrevKv})
			}
		case *pb.ResponseOp_ResponseDeleteRange:
			s.unmarkKVs(o.ResponseDeleteRange.PrevKvs)
		case *pb.ResponseOp_ResponseTxn:
			s.unmarkTxn(o.ResponseTxn)
		}
	}
}
