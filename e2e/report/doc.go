// Package report writes an e2e run's account as one self-contained HTML page (no scripts, no external assets): an
// introduction, a summary table with a column per run, and panels of line charts drawn as inline SVG, the runs side
// by side on shared axes, with vertical markers (onset, alert, trip, enforcement, release steps) whose labels are laid
// out in lanes so none overlaps or runs off the chart, a legend for the marker colours, and a Y axis that clips a
// short spike (and says so) instead of flattening every other line.
//
// The model is generic: a new time series is a Series appended to a chart, a new chart is a Panel, a new marker kind
// is a Mark with a new Kind and a MarkKind legend entry; no layout code changes.
package report
