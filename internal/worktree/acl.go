package worktree

import (
	"encoding/binary"
	"errors"
)

// POSIX ACLs are stored as the xattrs system.posix_acl_access and
// system.posix_acl_default, in the form Linux's getxattr(2) gives them
// (include/uapi/linux/posix_acl_xattr.h): a little-endian u32 version (2),
// then one entry of tag (u16), perm (u16) and id (u32) per line. With
// FUSE_POSIX_ACL the kernel enforces them from getxattr and leaves to the
// filesystem what ext4 does in fs/posix_acl.c: keeping the mode in step
// with the access ACL (posix_acl_update_mode, posix_acl_chmod) and
// inheriting default ACLs (posix_acl_create).
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"

	aclVersion   = 2
	aclUserObj   = 0x01
	aclUser      = 0x02
	aclGroupObj  = 0x04
	aclGroup     = 0x08
	aclMask      = 0x10
	aclOther     = 0x20
	aclEntrySize = 8
)

var errBadACL = errors.New("not a valid POSIX ACL")

// aclEntry is one line of an ACL.
type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// parseACL reads an ACL xattr value, checking what posix_acl_valid does:
// one owner, owning group and other entry, a mask when there are named
// entries, permissions of rwx at most.
func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || (len(b)-4)%aclEntrySize != 0 || binary.LittleEndian.Uint32(b) != aclVersion {
		return nil, errBadACL
	}
	var out []aclEntry
	count := map[uint16]int{}
	for p := 4; p < len(b); p += aclEntrySize {
		e := aclEntry{binary.LittleEndian.Uint16(b[p:]), binary.LittleEndian.Uint16(b[p+2:]), binary.LittleEndian.Uint32(b[p+4:])}
		if e.perm&^7 != 0 {
			return nil, errBadACL
		}
		switch e.tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther, aclUser, aclGroup:
		default:
			return nil, errBadACL
		}
		count[e.tag]++
		out = append(out, e)
	}
	if count[aclUserObj] != 1 || count[aclGroupObj] != 1 || count[aclOther] != 1 || count[aclMask] > 1 ||
		(count[aclUser]+count[aclGroup] > 0 && count[aclMask] == 0) {
		return nil, errBadACL
	}
	return out, nil
}

func encodeACL(es []aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// aclMode returns mode with its permission bits taken from an access ACL:
// the owner's, the mask's (or the owning group's without a mask) and
// other's (posix_acl_equiv_mode). minimal is set when the ACL says no more
// than those bits, so that ext4 keeps no ACL at all.
func aclMode(es []aclEntry, mode uint32) (_ uint32, minimal bool) {
	mode &^= 0o777
	minimal = true
	var group, mask uint32
	hasMask := false
	for _, e := range es {
		switch e.tag {
		case aclUserObj:
			mode |= uint32(e.perm) << 6
		case aclGroupObj:
			group = uint32(e.perm)
		case aclMask:
			mask, hasMask = uint32(e.perm), true
			minimal = false
		case aclOther:
			mode |= uint32(e.perm)
		default:
			minimal = false
		}
	}
	if hasMask {
		group = mask
	}
	return mode | group<<3, minimal
}

// aclChmod sets the owner, group class and other entries of an access ACL
// to a new mode's bits (posix_acl_chmod): the mask when there is one,
// otherwise the owning group.
func aclChmod(es []aclEntry, mode uint32) []aclEntry {
	out := append([]aclEntry(nil), es...)
	hasMask := false
	for _, e := range es {
		hasMask = hasMask || e.tag == aclMask
	}
	for i := range out {
		switch e := &out[i]; {
		case e.tag == aclUserObj:
			e.perm = uint16(mode>>6) & 7
		case e.tag == aclMask || (e.tag == aclGroupObj && !hasMask):
			e.perm = uint16(mode>>3) & 7
		case e.tag == aclOther:
			e.perm = uint16(mode) & 7
		}
	}
	return out
}

// aclCreate is posix_acl_create_masq: the access ACL a new entry of the
// given mode gets from its directory's default ACL, and its mode. The ACL
// is nil when it says no more than the mode.
func aclCreate(def []aclEntry, mode uint32) ([]byte, uint32) {
	out := append([]aclEntry(nil), def...)
	var groupObj, mask *aclEntry
	for i := range out {
		switch e := &out[i]; e.tag {
		case aclUserObj:
			e.perm &= uint16(mode>>6) & 7
			mode = mode&^0o700 | uint32(e.perm)<<6
		case aclOther:
			e.perm &= uint16(mode) & 7
			mode = mode&^0o007 | uint32(e.perm)
		case aclGroupObj:
			groupObj = e
		case aclMask:
			mask = e
		}
	}
	class := groupObj
	if mask != nil {
		class = mask
	}
	class.perm &= uint16(mode>>3) & 7
	mode = mode&^0o070 | uint32(class.perm)<<3
	if _, minimal := aclMode(out, mode); minimal {
		return nil, mode
	}
	return encodeACL(out), mode
}
