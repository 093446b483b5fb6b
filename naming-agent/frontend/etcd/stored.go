package etcd

import (
	"bytes"
	"context"
	"encoding/json"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// storedKV is one rendered key as kept upstream; a revision 0 is the
// revision of the put that wrote it.
type storedKV struct {
	Key     string `json:"k"`
	Value   []byte `json:"v"`
	Create  int64  `json:"c,omitempty"`
	Mod     int64  `json:"m,omitempty"`
	Version int64  `json:"n"`
}

// encodeRendering is the next rendering after cur, as stored upstream.
func encodeRendering(cur snap, next map[string][]byte) []byte {
	out := make([]storedKV, 0, len(next))
	for _, k := range sortedKeys(next) {
		e := storedKV{Key: k, Value: next[k], Version: 1}
		if old, ok := cur.kvs[k]; ok {
			e.Create, e.Version = old.CreateRevision, old.Version+1
			if bytes.Equal(old.Value, next[k]) {
				e.Mod, e.Version = old.ModRevision, old.Version
			}
		}
		out = append(out, e)
	}
	b, _ := json.Marshal(out)
	return b
}

// decodeRendering reads a stored rendering written at revision rev.
func decodeRendering(b []byte, rev int64) (snap, bool) {
	var in []storedKV
	if json.Unmarshal(b, &in) != nil {
		return snap{}, false
	}
	s := snap{rev: rev, kvs: make(map[string]*mvccpb.KeyValue, len(in))}
	for _, e := range in {
		kv := &mvccpb.KeyValue{Key: []byte(e.Key), Value: e.Value, CreateRevision: e.Create, ModRevision: e.Mod, Version: e.Version}
		if kv.CreateRevision == 0 {
			kv.CreateRevision = rev
		}
		if kv.ModRevision == 0 {
			kv.ModRevision = rev
		}
		s.kvs[e.Key] = kv
	}
	return s, true
}

// stored is rs's rendering at revision rev (0: the newest) as the
// upstream keeps it; nothing stored, or unreadable, is an empty one.
func (vs *views) stored(ctx context.Context, rs readSpace, rev int64) snap {
	s, _ := vs.storedAt(ctx, rs, rev)
	return s
}

func (vs *views) storedAt(ctx context.Context, rs readSpace, rev int64) (snap, error) {
	empty := snap{kvs: map[string]*mvccpb.KeyValue{}}
	resp, err := vs.s.kv.Range(ctx, &pb.RangeRequest{Key: []byte(vs.s.viewsAt + rs.id()), Revision: rev})
	if err != nil {
		return empty, err
	}
	if len(resp.Kvs) == 0 {
		return empty, nil
	}
	s, ok := decodeRendering(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if !ok {
		return empty, nil
	}
	return s, nil
}
