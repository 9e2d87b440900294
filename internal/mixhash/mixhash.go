// Package mixhash is the one 64-bit hash the ring and placement use:
// FNV-1a followed by the splitmix64 finalizer, which spreads close inputs
// ("m#1", "m#2", "ns/wf/a/0") over the whole range where FNV alone does
// not. Its values are part of an installation's state (a namespace's
// partition), so it must never change.
package mixhash

import "hash/fnv"

// Sum64 hashes the parts, separated by a zero byte (a single part is
// hashed as it is).
func Sum64(parts ...string) uint64 {
	f := fnv.New64a()
	for i, p := range parts {
		if i > 0 {
			_, _ = f.Write([]byte{0})
		}
		_, _ = f.Write([]byte(p))
	}
	x := f.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
