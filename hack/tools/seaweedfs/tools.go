//go:build tools

// Package tools pins SeaweedFS (weed), a real S3 server for tests.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
