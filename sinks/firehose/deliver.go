package firehose

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsfirehose "github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/outage"
	"github.com/shardhose/shardhose/internal/retry"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
)

// Error codes this sink writes into error records besides Firehose's own.
const (
	// CodeRecordTooLarge marks a record over MaxRecordSize; it was never sent.
	CodeRecordTooLarge = "Firehose.RecordTooLarge"
	// CodeRequestFailed marks records of a call that got no usable answer: a network error, or
	// an answer that counts refused records without saying which.
	CodeRequestFailed = "Firehose.RequestFailed"
)

// delivery is one batch on its way: the payloads to send, which records Firehose has yet to
// accept, and why each was last refused. Only the goroutine delivering the batch uses it.
type delivery struct {
	s        *Sink
	records  []record.Record
	payloads [][]byte // what is sent for each record: its data, plus "\n" with append_newline
	pending  []int    // indexes of the records not yet accepted, in order
	codes    []string // per record: the error code of its last refusal
	messages []string // per record: the error message of its last refusal

	accepted      int // records Firehose accepted
	acceptedBytes int
	backedUp      int // records stored in the backup instead
}

// deliver is the batcher's DeliverFunc: it returns nil once every record of batch is accepted by
// Firehose or stored in the backup, and an error only when ctx ends first (the batcher ends it when Close gives up).
func (s *Sink) deliver(ctx context.Context, batch []record.Record) error {
	started := s.clock.Now()
	d := &delivery{
		s:        s,
		records:  batch,
		payloads: make([][]byte, len(batch)),
		codes:    make([]string, len(batch)),
		messages: make([]string, len(batch)),
	}
	var tooLarge []int
	for i := range batch {
		p := batch[i].Data
		if s.newline {
			p = make([]byte, 0, len(batch[i].Data)+1)
			p = append(append(p, batch[i].Data...), '\n')
		}
		d.payloads[i] = p
		if len(p) > MaxRecordSize {
			d.refuse(i, CodeRecordTooLarge, fmt.Sprintf("the record is %d bytes; Firehose takes at most %d", len(p), MaxRecordSize))
			tooLarge = append(tooLarge, i)
			continue
		}
		d.pending = append(d.pending, i)
	}

	if len(d.pending) > 0 {
		if err := d.sendPending(ctx); err != nil {
			return err
		}
	}
	if len(tooLarge) > 0 {
		if err := d.setAside(ctx, tooLarge); err != nil {
			return err
		}
	}
	if d.accepted > 0 {
		took := s.clock.Now().Sub(started)
		hooks.Each(s.hooks, func(h hooks.Delivered) { h.OnDelivered(s.name, d.accepted, d.acceptedBytes, took) })
	}
	s.log.Debug("batch done", "records", len(batch), "accepted", d.accepted, "backed_up", d.backedUp)
	return nil
}

// sendPending sends the pending records until Firehose accepts them all, or, with a backup and a
// retry duration, until the duration has passed and the backup took the rest.
func (d *delivery) sendPending(ctx context.Context) error {
	s := d.s
	total := len(d.pending)
	if s.backup == nil {
		retrying := func(attempt int, err error, wait time.Duration) {
			s.log.Debug("firehose did not accept every record; sending the rest again", "attempt", attempt, "sdk_attempts", outage.Attempts(err), "records", len(d.pending), "retry_in", wait, "error", err)
		}
		if _, err := retry.Do(ctx, s.clock, s.policy, s.health.Track(d.attempt), retrying); err != nil {
			return fmt.Errorf("deliver to firehose delivery stream %s: %d of %d records not accepted: %w", s.stream, len(d.pending), total, err)
		}
		return nil
	}
	delivered, attempts, err := backup.DeliverOrBackup(backup.WithPauseHooks(ctx, s.name, s.hooks), s.clock, s.policy, s.health.Track(d.attempt), d.backUp, s.log)
	if err != nil {
		return fmt.Errorf("deliver to firehose delivery stream %s: %d of %d records neither accepted nor backed up: %w", s.stream, len(d.pending), total, err)
	}
	if !delivered {
		s.log.Warn("records firehose refused for the whole retry duration are in the backup", "records", d.backedUp, "attempts", attempts, "folder", BackupFolder)
	}
	return nil
}

// attempt sends every pending record once, in calls of at most MaxRecordsPerCall records and
// MaxBytesPerCall bytes, and keeps pending only the records Firehose refused. It stops at the
// first call that fails as a whole (the records of that call and of the calls not made stay
// pending). It returns nil when nothing is left pending.
func (d *delivery) attempt(ctx context.Context, attempt int) error {
	s := d.s
	before := len(d.pending)
	var refused []int
	var callErr error
	rest := d.pending
	for len(rest) > 0 {
		chunk := rest[:d.callSize(rest)]
		rest = rest[len(chunk):]
		in := &awsfirehose.PutRecordBatchInput{
			DeliveryStreamName: aws.String(s.stream),
			Records:            make([]types.Record, len(chunk)),
		}
		for k, i := range chunk {
			in.Records[k].Data = d.payloads[i]
		}
		out, err := s.client.PutRecordBatch(ctx, in)
		if err != nil {
			code, msg := errorCode(err), errorMessage(err)
			if code == "" {
				code = CodeRequestFailed
			}
			for _, i := range chunk {
				d.refuse(i, code, msg)
			}
			for _, i := range rest {
				d.refuse(i, code, "not sent: an earlier call of the same attempt failed: "+msg)
			}
			refused = append(append(refused, chunk...), rest...)
			// A refusal that needs an operator carries what to look at: the sink's outage
			// reporter (s.health) puts it on the outage's lines, once per outage, not once per
			// attempt; the call is retried all the same and nothing is dropped.
			callErr = outage.WithAction(fmt.Errorf("put record batch of %d records: %w", len(chunk), err), operatorHint(code))
			s.log.Debug("firehose refused the call; retrying", "attempt", attempt, "records", len(refused), "code", code, "error", err)
			break
		}
		refused = append(refused, d.refusedIn(chunk, out)...)
	}

	for _, i := range d.pending {
		d.acceptedBytes += len(d.payloads[i])
	}
	for _, i := range refused {
		d.acceptedBytes -= len(d.payloads[i])
	}
	d.accepted += before - len(refused)
	d.pending = refused
	if len(refused) == 0 {
		return nil
	}

	var err error
	if callErr != nil {
		err = fmt.Errorf("%d of %d records not accepted: %w", len(refused), before, callErr)
	} else {
		first := refused[0]
		err = fmt.Errorf("delivery stream %s refused %d of %d records (first: %s: %s)", s.stream, len(refused), before, d.codes[first], d.messages[first])
	}
	hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, len(refused), err) })
	return err
}

// callSize returns how many of the records at the head of idx fit in one call.
func (d *delivery) callSize(idx []int) int {
	n, size := 0, 0
	for _, i := range idx {
		if n == MaxRecordsPerCall || (n > 0 && size+len(d.payloads[i]) > MaxBytesPerCall) {
			break
		}
		n++
		size += len(d.payloads[i])
	}
	return n
}

// refusedIn returns the records of chunk that out says Firehose refused, by their index in
// RequestResponses. An answer that counts failures but does not say which ones (it never should)
// has the whole chunk sent again: a duplicate at worst, never a loss.
func (d *delivery) refusedIn(chunk []int, out *awsfirehose.PutRecordBatchOutput) []int {
	failed := int(aws.ToInt32(out.FailedPutCount))
	var refused []int
	if len(out.RequestResponses) == len(chunk) {
		for k, e := range out.RequestResponses {
			if code := aws.ToString(e.ErrorCode); code != "" {
				d.refuse(chunk[k], code, aws.ToString(e.ErrorMessage))
				refused = append(refused, chunk[k])
			}
		}
	}
	if failed > 0 && len(refused) == 0 {
		msg := fmt.Sprintf("FailedPutCount is %d but the answer's %d entries (for %d records) do not say which records failed", failed, len(out.RequestResponses), len(chunk))
		for _, i := range chunk {
			d.refuse(i, CodeRequestFailed, msg)
		}
		return chunk
	}
	return refused
}

func (d *delivery) refuse(i int, code, msg string) {
	d.codes[i], d.messages[i] = code, msg
}

// backUp is DeliverOrBackup's backup step: it stores the pending records as error records.
func (d *delivery) backUp(ctx context.Context, _ error, attempts int) error {
	if err := d.writeErrors(ctx, d.pending, attempts); err != nil {
		return err
	}
	d.backedUp += len(d.pending)
	return nil
}

// setAside deals with records too large to send: they go to the backup, or, without one, the
// batch can never complete and the sink pauses, logging why until ctx ends.
func (d *delivery) setAside(ctx context.Context, idx []int) error {
	s := d.s
	if s.backup != nil {
		// The Writer retries until it succeeds or ctx ends.
		if err := d.writeErrors(ctx, idx, 0); err != nil {
			return err
		}
		d.backedUp += len(idx)
		s.log.Warn("records over firehose's size limit are in the backup", "records", len(idx), "limit", MaxRecordSize, "folder", BackupFolder)
		return nil
	}
	r := &d.records[idx[0]]
	errTooLarge := fmt.Errorf("%d records over firehose's limit of %d bytes, the first %d bytes from shard %s at sequence number %s, cannot be delivered and there is no s3_backup to put them in",
		len(idx), MaxRecordSize, len(d.payloads[idx[0]]), r.ShardID, r.Position())
	never := func(context.Context, int) error { return errTooLarge }
	paused := func(attempt int, err error, wait time.Duration) {
		s.log.Error("sink paused: "+err.Error()+"; configure s3_backup and restart to set such records aside", "attempt", attempt)
		hooks.Each(s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(s.name, len(idx), err) })
	}
	policy := s.policy
	policy.MaxElapsed = 0
	_, err := retry.Do(ctx, s.clock, policy, never, paused)
	return fmt.Errorf("firehose sink %s: %w", s.name, err)
}

// writeErrors stores the records idx in the backup as Firehose error records.
func (d *delivery) writeErrors(ctx context.Context, idx []int, attempts int) error {
	s := d.s
	end := s.clock.Now()
	recs := make([]backup.ErrorRecord, len(idx))
	for k, i := range idx {
		r := &d.records[i]
		arrival := r.ApproximateArrivalTimestamp
		if arrival.IsZero() {
			arrival = end
		}
		recs[k] = backup.ErrorRecord{
			AttemptsMade:           attempts,
			ArrivalTimestamp:       arrival.UnixMilli(),
			ErrorCode:              d.codes[i],
			ErrorMessage:           d.messages[i],
			AttemptEndingTimestamp: end.UnixMilli(),
			RawData:                d.payloads[i],
			Extra: map[string]any{
				"shardId":           r.ShardID,
				"dataId":            r.Position().String(),
				"subsequenceNumber": r.SubSequenceNumber,
			},
		}
	}
	if err := s.backup.WriteErrors(ctx, BackupFolder, recs); err != nil {
		return fmt.Errorf("back up %d records for firehose delivery stream %s: %w", len(recs), s.stream, err)
	}
	return nil
}
