package fusefs

import "github.com/hanwen/go-fuse/v2/fuse"

// aclDefault is the xattr of a directory's default POSIX ACL.
const aclDefault = "system.posix_acl_default"

// umaskFS applies the caller's umask to a new entry's mode as ext4 does
// with POSIX ACLs (fs/posix_acl.c, posix_acl_create): not at all when the
// entry's directory has a default ACL (the ACL's inheritance then cuts the
// mode, worktree.Tree.Create), otherwise once. The mount asks the kernel
// for FUSE_DONT_MASK, so the mode arrives unmasked with the umask beside
// it, which go-fuse's node interface does not pass on: this layer below it
// does the masking.
type umaskFS struct{ fuse.RawFileSystem }

// masked returns mode with umask applied, unless the directory of the
// request's header has a default ACL.
func (u umaskFS) masked(cancel <-chan struct{}, dir *fuse.InHeader, mode, umask uint32) uint32 {
	if _, st := u.RawFileSystem.GetXAttr(cancel, dir, aclDefault, nil); st == fuse.OK {
		return mode
	}
	return mode &^ (umask & 0o777)
}

// Mkdir makes a directory with the umask applied as ext4 does.
func (u umaskFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = u.masked(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Mkdir(cancel, in, name, out)
}

// Mknod makes a node with the umask applied as ext4 does.
func (u umaskFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = u.masked(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Mknod(cancel, in, name, out)
}

// Create makes a file with the umask applied as ext4 does.
func (u umaskFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	in.Mode = u.masked(cancel, &in.InHeader, in.Mode, in.Umask)
	return u.RawFileSystem.Create(cancel, in, name, out)
}
