package remediate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// ErrProtected is returned when Pause is asked to pause a protected workload.
var ErrProtected = errors.New("workload is protected")

// Config of a Remediator.
type Config struct {
	Client kubernetes.Interface
	// Actor is recorded as who paused (e.g. "fanout-aggregator"); "fanout" when empty.
	Actor string
	// Protected reports workloads that must never be paused (e.g. kube-system, fanout itself). The annotation
	// fanout.dev/protected="true" protects a workload regardless.
	Protected func(w Workload, obj metav1.Object) bool
	// DryRun sends every patch as a server-side dry run: validated and reported, nothing stored.
	DryRun bool
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Remediator pauses and un-pauses workloads.
type Remediator struct {
	cfg Config
	log *slog.Logger
}

// New returns a Remediator.
func New(cfg Config) (*Remediator, error) {
	if cfg.Client == nil {
		return nil, errors.New("remediate: a client is required")
	}
	if cfg.Actor == "" {
		cfg.Actor = "fanout"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Remediator{cfg: cfg, log: log.With("component", "remediate")}, nil
}

// Action is what a call did.
type Action string

const (
	ActionPaused        Action = "paused"         // paused now, record written
	ActionAlreadyPaused Action = "already-paused" // nothing to do: paused and the field still pauses it
	ActionRepaused      Action = "repaused"       // the record existed but the field had been reverted: re-applied
	ActionUndone        Action = "undone"         // restored and annotations removed
	ActionNotPaused     Action = "not-paused"     // Undo on a workload without a pause record: nothing to do
)

// Result of Pause or Undo.
type Result struct {
	Workload Workload
	Action   Action
	// Patch is the JSON merge patch sent (in dry-run: the one that would be stored); nil when nothing was sent.
	Patch  json.RawMessage
	DryRun bool
	// Record is the pause record in effect (Pause) or removed (Undo); nil when there was none.
	Record *Record
	// Previous maps each changed field's path to its exact JSON value before the pause.
	Previous map[string]json.RawMessage
}

// Pause pauses w for cause. Pausing a paused workload keeps its first record.
func (r *Remediator) Pause(ctx context.Context, w Workload, cause Cause) (Result, error) {
	k, ok := kinds[w.Kind]
	if !ok {
		return Result{}, fmt.Errorf("pause %s: %w", w, ErrUnsupportedKind)
	}
	var res Result
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		res, err = r.pauseOnce(ctx, k, w, cause)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("pause %s: %w", w, hint(err, k, w))
	}
	r.log.Info("pause", "workload", w.String(), "action", res.Action, "dry_run", res.DryRun, "reason", cause.Reason,
		"decision", cause.DecisionID)
	return res, nil
}

func (r *Remediator) pauseOnce(ctx context.Context, k kind, w Workload, cause Cause) (Result, error) {
	obj, err := k.get(ctx, r.cfg.Client, w.Namespace, w.Name)
	if err != nil {
		return Result{}, err
	}
	om := obj.(metav1.Object)
	if om.GetAnnotations()[AnnotationProtected] == "true" || (r.cfg.Protected != nil && r.cfg.Protected(w, om)) {
		return Result{}, ErrProtected
	}
	m, err := toJSONMap(obj)
	if err != nil {
		return Result{}, err
	}
	cur := lookup(m, k.path)
	res := Result{Workload: w, DryRun: r.cfg.DryRun}
	patch := map[string]any{"metadata": map[string]any{"resourceVersion": om.GetResourceVersion()}}

	if raw, ok := om.GetAnnotations()[AnnotationPaused]; ok {
		// Already paused: keep the first record; re-assert the pause if the field was reverted by hand.
		res.Record, res.Previous = parseRecord(raw, om.GetAnnotations()[AnnotationPrevious])
		if k.isPaused(cur) {
			res.Action = ActionAlreadyPaused
			return res, nil
		}
		res.Action = ActionRepaused
	} else {
		prev, err := json.Marshal(cur)
		if err != nil {
			return Result{}, fmt.Errorf("encode %s: %w", dotted(k.path), err)
		}
		res.Previous = map[string]json.RawMessage{dotted(k.path): prev}
		res.Record = &Record{By: r.cfg.Actor, Reason: cause.Reason, DecisionID: cause.DecisionID,
			DecidedAt: cause.DecidedAt.UTC(), PausedAt: r.cfg.Now().UTC(), Action: k.action}
		recJSON, err := json.Marshal(res.Record)
		if err != nil {
			return Result{}, fmt.Errorf("encode record: %w", err)
		}
		prevJSON, err := json.Marshal(res.Previous)
		if err != nil {
			return Result{}, fmt.Errorf("encode previous values: %w", err)
		}
		patch["metadata"].(map[string]any)["annotations"] = map[string]any{
			AnnotationPaused:   string(recJSON),
			AnnotationPrevious: string(prevJSON),
			AnnotationUndo:     "fanoutctl undo " + w.String(),
		}
		res.Action = ActionPaused
	}
	setPath(patch, k.path, k.paused(cur))
	if res.Patch, err = json.Marshal(patch); err != nil {
		return Result{}, fmt.Errorf("encode patch: %w", err)
	}
	return res, k.patch(ctx, r.cfg.Client, w.Namespace, w.Name, res.Patch, r.patchOptions())
}

// Undo restores the fields a pause changed to their recorded values and removes the pause annotations. Undo of a
// workload that is not paused does nothing (ActionNotPaused).
func (r *Remediator) Undo(ctx context.Context, w Workload) (Result, error) {
	k, ok := kinds[w.Kind]
	if !ok {
		return Result{}, fmt.Errorf("undo %s: %w", w, ErrUnsupportedKind)
	}
	var res Result
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		res, err = r.undoOnce(ctx, k, w)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("undo %s: %w", w, hint(err, k, w))
	}
	r.log.Info("undo", "workload", w.String(), "action", res.Action, "dry_run", res.DryRun)
	return res, nil
}

func (r *Remediator) undoOnce(ctx context.Context, k kind, w Workload) (Result, error) {
	obj, err := k.get(ctx, r.cfg.Client, w.Namespace, w.Name)
	if err != nil {
		return Result{}, err
	}
	om := obj.(metav1.Object)
	res := Result{Workload: w, DryRun: r.cfg.DryRun}
	ann := om.GetAnnotations()
	raw, ok := ann[AnnotationPaused]
	if !ok {
		res.Action = ActionNotPaused
		return res, nil
	}
	res.Record, res.Previous = parseRecord(raw, ann[AnnotationPrevious])
	if res.Previous == nil {
		return Result{}, fmt.Errorf("annotation %s missing or not a JSON object: restore by hand and remove the "+
			"fanout.dev/paused* annotations", AnnotationPrevious)
	}
	m, err := toJSONMap(obj)
	if err != nil {
		return Result{}, err
	}
	patch := map[string]any{"metadata": map[string]any{
		"resourceVersion": om.GetResourceVersion(),
		"annotations":     map[string]any{AnnotationPaused: nil, AnnotationPrevious: nil, AnnotationUndo: nil},
	}}
	for path, prevJSON := range res.Previous {
		if path != dotted(k.path) {
			return Result{}, fmt.Errorf("annotation %s names field %q, a %s pause only changes %s",
				AnnotationPrevious, path, w.Kind, dotted(k.path))
		}
		prev, err := decodeValue(prevJSON)
		if err != nil {
			return Result{}, fmt.Errorf("decode previous %s: %w", path, err)
		}
		cur := lookup(m, k.path)
		if !k.isPaused(cur) {
			r.log.Warn("field changed since the pause; restoring the recorded value", "workload", w.String(),
				"field", path)
		}
		setPath(patch, k.path, restoreValue(prev, cur))
	}
	if res.Patch, err = json.Marshal(patch); err != nil {
		return Result{}, fmt.Errorf("encode patch: %w", err)
	}
	res.Action = ActionUndone
	return res, k.patch(ctx, r.cfg.Client, w.Namespace, w.Name, res.Patch, r.patchOptions())
}

func (r *Remediator) patchOptions() metav1.PatchOptions {
	o := metav1.PatchOptions{FieldManager: "fanout-remediate"}
	if r.cfg.DryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

// parseRecord decodes the annotations (nil parts when malformed).
func parseRecord(rec, prev string) (*Record, map[string]json.RawMessage) {
	var r *Record
	if err := json.Unmarshal([]byte(rec), &r); err != nil {
		r = nil
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(prev), &p); err != nil {
		p = nil
	}
	return r, p
}

// hint adds the RBAC needed to a forbidden error.
func hint(err error, k kind, w Workload) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (needs get and patch on %s in namespace %s)", err, k.resource, w.Namespace)
	}
	return err
}
