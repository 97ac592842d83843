// Package keyvault is the Backup Key Vault: password-based recovery of a
// repository key slot through an HSM that never sees the password, counts
// every guess, and destroys the user's key after too many wrong ones.
// docs/VAULT.md specifies the protocol and its threat model.
package keyvault
