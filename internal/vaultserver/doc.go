// Package vaultserver is the server side of the Backup Key Vault
// (docs/VAULT.md): the HSM behind the HSM interface (any PKCS#11 token, or
// an embedded SoftHSM2 token), the Vault (records in a bbolt database,
// guesses counted in the token before they are evaluated), and the HTTP
// Server with its rate limits, audit log and metrics. The protocol and the
// client are package keyvault. It uses cgo (PKCS#11), so only the
// sealfs-vault command links it, never sealfs.
package vaultserver
