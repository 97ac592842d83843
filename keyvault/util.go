package keyvault

import (
	"bytes"
	"encoding/base64"
	"io"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }

func encode(b []byte) string { return base64Std(b) }

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
