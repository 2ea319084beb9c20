// Package audit writes every kill-switch decision with its evidence as one JSON object per line.
package audit
