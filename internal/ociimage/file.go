package ociimage

import "io/fs"

// Owner IDs of the two users of the base layer, as in distroless.
const (
	RootID    = 0
	NonrootID = 65532
)

// DefaultCABundle is where Debian and Ubuntu hosts keep the CA bundle that
// BaseFiles copies into the image, and where the image keeps it too.
const DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"

// File is one entry of a layer: a regular file when Mode.IsDir() is false,
// a directory otherwise. Only Mode's permission bits, fs.ModeDir and
// fs.ModeSticky are used.
type File struct {
	// Path is absolute and slash-separated, e.g. "/etc/passwd".
	Path     string
	Mode     fs.FileMode
	UID, GID int
	// Data is the content of a regular file; nil for a directory.
	Data []byte
}

// Dir returns a directory entry.
func Dir(path string, perm fs.FileMode, uid, gid int) File {
	return File{Path: path, Mode: fs.ModeDir | perm, UID: uid, GID: gid}
}

// Regular returns a regular file entry.
func Regular(path string, perm fs.FileMode, uid, gid int, data []byte) File {
	return File{Path: path, Mode: perm, UID: uid, GID: gid, Data: data}
}

// passwd, group and nsswitch.conf match distroless static-debian12 so that
// tools resolving uid 65532 (ps, id, Go's os/user) see the same names.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"tty:x:5:\n" +
		"staff:x:50:\n" +
		"nonroot:x:65532:\n"
	nsswitch = "hosts: files dns\n"
)

// BaseFiles returns the files of the base layer, the equivalent of
// distroless static "nonroot". caBundle becomes
// /etc/ssl/certs/ca-certificates.crt; nil leaves it out (TLS clients in the
// image then trust no certificate authority).
func BaseFiles(caBundle []byte) []File {
	files := []File{
		Regular("/etc/passwd", 0o644, RootID, RootID, []byte(passwd)),
		Regular("/etc/group", 0o644, RootID, RootID, []byte(group)),
		Regular("/etc/nsswitch.conf", 0o644, RootID, RootID, []byte(nsswitch)),
		Dir("/home/nonroot", 0o700, NonrootID, NonrootID),
		Dir("/root", 0o700, RootID, RootID),
		// Sticky and world-writable: the one place a non-root process
		// may create files without a volume.
		Dir("/tmp", fs.ModeSticky|0o777, RootID, RootID),
	}
	if caBundle != nil {
		files = append(files, Regular(DefaultCABundle, 0o644, RootID, RootID, caBundle))
	}
	return files
}

// BinaryFile returns the entry of the binary name: /<name>, mode 0755,
// owned by root so the non-root process cannot replace its own executable.
func BinaryFile(name string, data []byte) File {
	return Regular("/"+name, 0o755, RootID, RootID, data)
}
