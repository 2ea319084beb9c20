package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// toJSONMap converts an API object to its JSON form, numbers kept exact.
func toJSONMap(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	return decodeMap(b)
}

func decodeMap(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	return m, nil
}

func decodeValue(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// lookup returns the value at path (nil when absent).
func lookup(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		cm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = cm[p]
	}
	return cur
}

// setPath sets path to v in m, creating intermediate objects.
func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func dotted(path []string) string { return strings.Join(path, ".") }

// restoreValue is the merge-patch value that turns cur back into prev exactly: for objects, prev plus null for every
// key that cur added (a merge patch merges objects key by key); otherwise prev itself (null removes the field).
func restoreValue(prev, cur any) any {
	pm, pok := prev.(map[string]any)
	cm, cok := cur.(map[string]any)
	if !pok || !cok {
		return prev
	}
	out := make(map[string]any, len(pm)+len(cm))
	for k := range cm {
		out[k] = nil
	}
	for k, v := range pm {
		out[k] = restoreValue(v, cm[k])
	}
	return out
}
