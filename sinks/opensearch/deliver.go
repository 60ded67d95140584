package opensearch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/backup"
)

type docState uint8

const (
	statePending  docState = iota // to be sent (again)
	stateIndexed                  // the cluster has it
	stateFailed                   // failed for good: handed to the backup at once
	stateBackedUp                 // given up on after the retry duration and backed up
)

// doc is one record of a batch on its way into the cluster.
type doc struct {
	rec        *record.Record
	arrival    time.Time
	index      string
	id         string // "" when the cluster assigns it
	positionID bool   // id derived from the record's position: a 409 means it is indexed
	action     []byte // the bulk action line
	attempts   int    // bulk requests that carried it
	code       string // last failure: errorCode and errorMessage of its error record
	message    string
	state      docState
}

// fail records a failure; permanent ones are not retried.
func (d *doc) fail(code, message string, permanent bool) {
	d.code, d.message = code, message
	if permanent {
		d.state = stateFailed
	}
}

// batchRun delivers one batch. Its docs are touched only by the goroutine running deliverBatch
// (DeliverOrBackup calls attempt and backupPending there); the goroutines backing up permanent
// failures get error records built beforehand.
type batchRun struct {
	s     *Sink
	ctx   context.Context // the batch's context: backups of permanent failures run until it ends
	docs  []doc
	start time.Time

	bg     sync.WaitGroup // backups of permanent failures
	bgMu   sync.Mutex
	bgErrs []error
}

// deliverBatch is the batcher's DeliverFunc: it returns nil once every record of recs is indexed
// or backed up (and, in AllDocuments mode, copied raw to the backup), and an error only when ctx
// ends first.
func (s *Sink) deliverBatch(ctx context.Context, recs []record.Record) error {
	run := s.newRun(ctx, recs)
	var raw chan error
	if s.allDocuments {
		raw = make(chan error, 1)
		go func() { raw <- s.backup.WriteRaw(ctx, recs) }()
	}
	var prepFailed []*doc
	for i := range run.docs {
		if run.docs[i].state == stateFailed {
			prepFailed = append(prepFailed, &run.docs[i])
		}
	}
	run.backupNow(prepFailed)

	var errs []error
	if len(run.pending()) > 0 {
		_, _, err := backup.DeliverOrBackup(backup.WithPauseHooks(ctx, s.name, s.hooks), s.clock, s.policy, s.health.Track(run.attempt), run.backupPending, s.log.With("batch_documents", len(recs)))
		if err != nil {
			errs = append(errs, err)
		}
	}
	run.bg.Wait()
	errs = append(errs, run.bgErrs...)
	if raw != nil {
		if err := <-raw; err != nil {
			errs = append(errs, fmt.Errorf("copy batch to the backup (AllDocuments): %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("opensearch sink %q: batch of %d documents not acknowledged: %w", s.name, len(recs), err)
	}
	run.report()
	return nil
}

// newRun prepares recs: index, id and action line per document. Documents that cannot be
// indexed at all (not a JSON object, no id field) are failed for good at once.
func (s *Sink) newRun(ctx context.Context, recs []record.Record) *batchRun {
	run := &batchRun{s: s, ctx: ctx, docs: make([]doc, len(recs)), start: s.clock.Now()}
	for i := range recs {
		d := &run.docs[i]
		d.rec = &recs[i]
		d.arrival = recs[i].ApproximateArrivalTimestamp
		if d.arrival.IsZero() {
			d.arrival = run.start
		}
		d.index = indexName(s.index, s.rotation, d.arrival)
		if err := checkDocument(d.rec.Data); err != nil {
			d.fail(ErrorCodeMalformedDocument, err.Error(), true)
			continue
		}
		switch {
		case s.idField != "":
			id, err := fieldID(d.rec.Data, s.idField)
			if err != nil {
				d.fail(ErrorCodeMissingDocumentID, err.Error(), true)
				continue
			}
			d.id = id
		case s.positionIDs:
			d.id = positionID(d.rec)
			d.positionID = d.id != ""
		}
		d.action = s.actionLine(d.index, d.id)
	}
	return run
}

func (run *batchRun) pending() []*doc {
	var out []*doc
	for i := range run.docs {
		if run.docs[i].state == statePending {
			out = append(out, &run.docs[i])
		}
	}
	return out
}

// attempt is DeliverOrBackup's deliver: one bulk request with every pending document. Documents
// that failed for good go to the backup at once; it fails while any document is left to retry.
func (run *batchRun) attempt(ctx context.Context, n int) error {
	docs := run.pending()
	if len(docs) == 0 {
		return nil
	}
	for _, d := range docs {
		d.attempts++
	}
	cause := run.send(ctx, docs)
	var failed, retry []*doc
	for _, d := range docs {
		switch d.state {
		case stateFailed:
			failed = append(failed, d)
		case statePending:
			retry = append(retry, d)
		}
	}
	run.backupNow(failed)
	if len(failed)+len(retry) > 0 {
		err := fmt.Errorf("%d of %d documents failed", len(failed)+len(retry), len(docs))
		hooks.Each(run.s.hooks, func(h hooks.DeliveryFailed) { h.OnDeliveryFailed(run.s.name, len(failed)+len(retry), err) })
	}
	if len(retry) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("bulk attempt %d: %w", n, ctx.Err())
	}
	first := retry[0]
	return &attemptError{attempt: n, failed: len(retry), sent: len(docs), code: first.code, message: first.message, index: first.index, cause: cause}
}

// attemptError says why an attempt left documents to retry.
type attemptError struct {
	attempt, failed, sent int
	code, message, index  string
	cause                 error // the request's own error when it got no answer
}

func (e *attemptError) Error() string {
	return fmt.Sprintf("bulk attempt %d: %d of %d documents not indexed, e.g. in %s: %s %s", e.attempt, e.failed, e.sent, e.index, e.code, e.message)
}

func (e *attemptError) Unwrap() error { return e.cause }

// backupNow stores documents that failed for good as error records, on a goroutine of their
// own, so that the remaining documents go on being retried meanwhile. The batch waits for it.
func (run *batchRun) backupNow(docs []*doc) {
	if len(docs) == 0 {
		return
	}
	recs := run.errorRecords(docs)
	run.s.log.Warn("documents rejected for good; backing them up", "documents", len(docs), "error_code", docs[0].code, "error", docs[0].message)
	run.bg.Go(func() {
		if err := run.s.backup.WriteErrors(run.ctx, backup.FolderOpenSearchFailed, recs); err != nil {
			run.bgMu.Lock()
			run.bgErrs = append(run.bgErrs, fmt.Errorf("back up %d rejected documents: %w", len(recs), err))
			run.bgMu.Unlock()
		}
	})
}

// backupPending is DeliverOrBackup's backup: the documents still failing after the retry
// duration become error records with their last error.
func (run *batchRun) backupPending(ctx context.Context, _ error, _ int) error {
	docs := run.pending()
	if len(docs) == 0 {
		return nil
	}
	if err := run.s.backup.WriteErrors(ctx, backup.FolderOpenSearchFailed, run.errorRecords(docs)); err != nil {
		return fmt.Errorf("back up %d documents: %w", len(docs), err)
	}
	for _, d := range docs {
		d.state = stateBackedUp
	}
	run.s.log.Warn("documents not indexed within the retry duration were backed up", "documents", len(docs), "error_code", docs[0].code, "error", docs[0].message)
	return nil
}

// errorRecords turns docs into Firehose error records.
func (run *batchRun) errorRecords(docs []*doc) []backup.ErrorRecord {
	now := run.s.clock.Now().UnixMilli()
	typeName := run.s.typeName
	if typeName == "" {
		typeName = "_doc"
	}
	out := make([]backup.ErrorRecord, len(docs))
	for i, d := range docs {
		extra := map[string]any{"esDocumentId": d.id, "esIndexName": d.index, "esTypeName": typeName}
		if run.s.serverless {
			extra = map[string]any{"osDocumentId": d.id, "osIndexName": d.index}
		}
		out[i] = backup.ErrorRecord{
			AttemptsMade:           d.attempts,
			ArrivalTimestamp:       d.arrival.UnixMilli(),
			ErrorCode:              d.code,
			ErrorMessage:           d.message,
			AttemptEndingTimestamp: now,
			RawData:                d.rec.Data,
			Extra:                  extra,
		}
	}
	return out
}

// report tells hooks and the log how the batch went.
func (run *batchRun) report() {
	indexed, bytes, backedUp := 0, 0, 0
	for i := range run.docs {
		switch run.docs[i].state {
		case stateIndexed:
			indexed++
			bytes += len(run.docs[i].rec.Data)
		case stateFailed, stateBackedUp:
			backedUp++
		}
	}
	took := run.s.clock.Now().Sub(run.start)
	if indexed > 0 {
		hooks.Each(run.s.hooks, func(h hooks.Delivered) { h.OnDelivered(run.s.name, indexed, bytes, took) })
	}
	run.s.log.Debug("batch done", "indexed", indexed, "backed_up", backedUp, "took", took)
}
