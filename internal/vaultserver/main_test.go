package vaultserver

import (
	"os"
	"testing"

	"github.com/sealfs/sealfs/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
