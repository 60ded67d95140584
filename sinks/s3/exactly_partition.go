package s3

import (
	"context"
	"fmt"

	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// Exactly once with dynamic partitioning. A run's records are split across partitions, so one
// position per run no longer says which records are in objects. Instead the run writes *cuts*:
// a cut is the shard's records in (start, end], and its objects are one chain per partition,
// each starting after the cut's start, named after the shard and the position it starts after
// (the partition's values are in the prefix), each holding the partition's records through
// some position (MetaLast), the last one through the cut's end. The run's position (what the
// lease row records) moves from one cut's start to the next only once every partition's chain
// reaches the cut's end.
//
// Where a cut ends is decided once, by whoever first creates its manifest: an empty object
// under CutPrefix named after the shard and the cut's start, whose MetaLast is the cut's end. A
// run that finds the manifest there adopts that end: it writes its records up to the end into
// the cut (walking each partition's chain past what is there, as without partitioning) and
// starts the next cut after it; when it has read only part of the cut, the cut goes on with its
// next buffer.

// CutPrefix is where an exactly-once sink with dynamic partitioning keeps its cut manifests:
// CutPrefix<sink>/<shard id>/<position the cut starts after>. Tools that read the bucket as
// data should skip it (a leading underscore hides it from Hive-style engines).
const CutPrefix = "_shardhose-cuts/"

// Metadata of a partition object: the cut it belongs to.
const (
	MetaCutAfter = "shardhose-cut-after"
	MetaCutEnd   = "shardhose-cut-end"
)

// cutState is the cut a run is writing. Only the run's upload goroutine uses it; the run's
// objects are written one at a time.
type cutState struct {
	start, end record.Position
	// upto maps a partition id to the position through which its records are in objects
	// (absent: start).
	upto map[string]record.Position
}

func (s *Sink) cutKey(shardID string, start record.Position) string {
	return CutPrefix + s.name + "/" + shardID + "/" + positionID(start)
}

// deliverCuts writes recs (in shard order, routes[i] the partition of recs[i]) into the run's
// cuts: the current one if it is under way, else a new one starting at the run's position and,
// unless another run decided its end already, ending at the last of recs.
func (s *Sink) deliverCuts(ctx context.Context, c *chain, recs []*record.Record, routes []*routed) error {
	if len(routes) != len(recs) {
		return fmt.Errorf("%w: %d records but %d partitions", errEncode, len(recs), len(routes))
	}
	for {
		pos := c.position()
		i := after(recs, pos)
		recs, routes = recs[i:], routes[i:]
		if len(recs) == 0 {
			return nil
		}
		last := recs[len(recs)-1].Position()
		if c.cut == nil || c.cut.start != pos {
			end, err := s.openCut(ctx, c, pos, last)
			if err != nil {
				return err
			}
			c.cut = &cutState{start: pos, end: end, upto: map[string]record.Position{}}
		}
		cut := c.cut
		n := after(recs, cut.end)
		through := last
		if cut.end.Compare(last) < 0 {
			through = cut.end
		}
		if err := s.putPartitions(ctx, c, cut, recs[:n], routes[:n], through); err != nil {
			return err
		}
		if last.Compare(cut.end) < 0 {
			return nil // the cut goes on in the run's next object
		}
		c.advance(cut.end)
		c.cut = nil
		recs, routes = recs[n:], routes[n:]
	}
}

// openCut creates the manifest of the cut starting after start, ending at end, unless it exists;
// it returns the cut's end as the manifest says.
func (s *Sink) openCut(ctx context.Context, c *chain, start, end record.Position) (record.Position, error) {
	key := s.cutKey(c.shardID, start)
	meta := map[string]string{MetaShard: c.shardID, MetaAfter: positionID(start), MetaLast: end.String()}
	found, _, err := s.create(ctx, c, key, nil, meta, start, 0)
	switch {
	case err != nil:
		return record.Position{}, err
	case found != nil:
		return *found, nil
	}
	return end, nil
}

// putPartitions writes the records of cut (all at or before its end, in shard order) into each
// partition's chain, through position through (the last record read so far, or the cut's end).
func (s *Sink) putPartitions(ctx context.Context, c *chain, cut *cutState, recs []*record.Record, routes []*routed, through record.Position) error {
	var order []string
	groups := map[string][]*record.Record{}
	values := map[string][]string{}
	for i, r := range recs {
		id := routes[i].id
		if _, ok := groups[id]; !ok {
			order = append(order, id)
			values[id] = routes[i].keys
		}
		groups[id] = append(groups[id], r)
	}
	meta := map[string]string{MetaCutAfter: positionID(cut.start), MetaCutEnd: cut.end.String()}
	for _, id := range order {
		part := groups[id]
		for {
			from, ok := cut.upto[id]
			if !ok {
				from = cut.start
			}
			part = part[after(part, from):]
			if len(part) == 0 {
				break
			}
			found, err := s.putRunObject(ctx, c, runObject{after: from, recs: part, keys: values[id], through: through, meta: meta})
			if err != nil {
				return err
			}
			if found == nil {
				cut.upto[id] = through
				break
			}
			cut.upto[id] = *found
			if c.lease() != sinks.LeaseHeld {
				return errRunEnded // a zombie: another worker is writing this cut
			}
		}
	}
	return nil
}
