package crypt

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealerBindsKeyAndAssociatedData(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("a vault secret of thirty-two byt")
	sealed, err := s.Seal([]byte("ad"), pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(pt)+Overhead {
		t.Fatalf("sealing added %d bytes, want %d", len(sealed)-len(pt), Overhead)
	}
	if got, err := s.Open([]byte("ad"), sealed); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %q, %v", got, err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, KeySize))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other ad":  func() ([]byte, error) { return s.Open([]byte("da"), sealed) },
		"other key": func() ([]byte, error) { return other.Open([]byte("ad"), sealed) },
		"flipped":   func() ([]byte, error) { return s.Open([]byte("ad"), flipped) },
		"truncated": func() ([]byte, error) { return s.Open([]byte("ad"), sealed[:Overhead-1]) },
	} {
		if got, err := open(); !errors.Is(err, ErrAuth) || got != nil {
			t.Errorf("%s: %q, %v; want ErrAuth and nothing", name, got, err)
		}
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Fatal("a 16-byte key made a sealer")
	}
}
