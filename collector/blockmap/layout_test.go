package blockmap

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/fanoutdev/fanout/bpf"
)

// Entry must match the bpf2go type of struct blocked_entry field by field.
func TestEntryLayoutMatchesGenerated(t *testing.T) {
	assertSameLayout(t, reflect.TypeFor[Entry](), reflect.TypeFor[bpf.EnforceBlockedEntry]())
}

func assertSameLayout(t *testing.T, ours, gen reflect.Type) {
	t.Helper()
	if ours.Size() != gen.Size() {
		t.Fatalf("size: %s is %d bytes, %s is %d", ours, ours.Size(), gen, gen.Size())
	}
	var of, gf []reflect.StructField
	for i := range ours.NumField() {
		if f := ours.Field(i); f.Name != "_" {
			of = append(of, f)
		}
	}
	for i := range gen.NumField() {
		if f := gen.Field(i); f.Name != "_" {
			gf = append(gf, f)
		}
	}
	if len(of) != len(gf) {
		t.Fatalf("fields: %d vs %d", len(of), len(gf))
	}
	for i := range of {
		if of[i].Name != gf[i].Name || of[i].Offset != gf[i].Offset || of[i].Type.Size() != gf[i].Type.Size() {
			t.Errorf("field %d: ours %s@%d (%d bytes), generated %s@%d (%d bytes)", i, of[i].Name, of[i].Offset,
				of[i].Type.Size(), gf[i].Name, gf[i].Offset, gf[i].Type.Size())
		}
	}
}

func TestSpecsMatchObject(t *testing.T) {
	spec, err := bpf.LoadEnforce()
	if err != nil {
		t.Fatal(err)
	}
	for _, ours := range []func() (name string, keySize, valueSize, maxEntries uint32){
		func() (string, uint32, uint32, uint32) {
			s := blockedSpec()
			return s.Name, s.KeySize, s.ValueSize, s.MaxEntries
		},
		func() (string, uint32, uint32, uint32) {
			s := activeSpec()
			return s.Name, s.KeySize, s.ValueSize, s.MaxEntries
		},
	} {
		name, k, v, n := ours()
		ms := spec.Maps[name]
		if ms == nil {
			t.Fatalf("object has no map %s", name)
		}
		if ms.KeySize != k || ms.ValueSize != v || ms.MaxEntries != n {
			t.Errorf("%s: object key/value/max %d/%d/%d, blockmap %d/%d/%d", name, ms.KeySize, ms.ValueSize,
				ms.MaxEntries, k, v, n)
		}
	}
	if got := unsafe.Sizeof(WorkloadRecord{}); got != 24 {
		t.Errorf("WorkloadRecord is %d bytes, spec says 24", got)
	}
}

func TestWorkloadHash(t *testing.T) {
	if WorkloadHash("Deployment/default/web") == WorkloadHash("Deployment/default/web2") {
		t.Fatal("hash collision on near names")
	}
	if WorkloadHash("") == 0 {
		t.Fatal("hash must never be 0")
	}
}
