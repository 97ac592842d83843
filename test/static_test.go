package test

import (
	"debug/elf"
	"testing"
)

// TestSealfsIsStatic: sealfs, built with CGO_ENABLED=0 as TestMain and make
// build do, is one static executable: no program interpreter (the dynamic
// loader) and no shared library it needs. Every other test here runs that
// binary, so they show that it mounts.
func TestSealfsIsStatic(t *testing.T) {
	f, err := elf.Open(sealfsBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("sealfs has a program interpreter: it is dynamically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("sealfs needs shared libraries %v", libs)
	}
}
