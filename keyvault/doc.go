// Package keyvault is the client side of the Backup Key Vault: password-
// based recovery of a repository key slot through a vault whose HSM never
// sees the password, counts every guess, and destroys the user's key after
// too many wrong ones. It holds the protocol (messages, endpoints, error
// codes and their errors), the client's OPRF math and the Client. It is
// pure Go: the server (HSM, database, HTTP) is internal/vaultserver, in
// its own command, so that sealfs itself builds without cgo.
// docs/VAULT.md specifies the protocol and its threat model.
package keyvault
