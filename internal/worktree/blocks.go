package worktree

import (
	"syscall"

	"github.com/sealfs/sealfs/repo"
)

// pageSize is the allocation unit st_blocks counts in, as ext4's 4 KiB
// blocks.
const pageSize = 4096

// symlinkInline is the longest symlink target ext4 keeps in the inode
// itself (a "fast" symlink, no block).
const symlinkInline = 59

// blocksLocked returns st_blocks for in: the 512-byte units of the 4 KiB
// pages that hold data, as ext4 counts them. The holes of a sparse file
// count nothing: a stored file counts the pages of its data extents; a
// queued one those its staging copy holds on the cache disk (or, changed
// in place, the pages of its stored data and of what was written); a
// directory one page; a symlink one page unless its target is short
// enough for ext4 to keep it in the inode.
func (t *Tree) blocksLocked(in *Inode) uint64 {
	switch in.meta.Type {
	case repo.NodeDir:
		return pageSize / 512
	case repo.NodeSymlink:
		if len(in.meta.Target) > symlinkInline {
			return pageSize / 512
		}
		return 0
	case repo.NodeFile:
	default:
		return 0
	}
	switch {
	case in.overlay:
		data := dataRanges(in.base, in.baseLimit)
		for _, s := range in.written {
			data = data.add(s.Start, s.End)
		}
		return pages(data) * (pageSize / 512)
	case in.staging != "" && t.inlineLocked(in):
		return (in.meta.Size + pageSize - 1) / pageSize * (pageSize / 512)
	case in.staging != "":
		var st syscall.Stat_t
		if err := syscall.Stat(t.stagingPath(in.staging), &st); err != nil {
			return 0
		}
		return uint64(st.Blocks)
	}
	return pages(dataRanges(in.meta.Content, in.meta.Size)) * (pageSize / 512)
}

// dataRanges returns the byte ranges of content below limit that are not
// holes.
func dataRanges(content []repo.Extent, limit uint64) ranges {
	var r ranges
	var off uint64
	for _, e := range content {
		if !e.Hole {
			r = r.add(off, min(off+e.Size, limit))
		}
		off += e.Size
		if off >= limit {
			break
		}
	}
	return r
}

// pages counts the pages that ranges touch.
func pages(r ranges) uint64 {
	var n, next uint64 // next: the first page not counted yet
	for _, s := range r {
		first, end := max(s.Start/pageSize, next), (s.End+pageSize-1)/pageSize
		if end > first {
			n += end - first
			next = end
		}
	}
	return n
}
