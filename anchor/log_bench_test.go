package anchor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

// benchLogSize is the size of the log the proof benchmarks read: 2^20 leaves
// of 100 bytes, built once per test binary in batches of MaxBatchLeaves.
const benchLogSize = 1 << 20

var bench struct {
	once  sync.Once
	dir   string
	store *BoltStore
	log   *Log
	err   error
}

// benchLog returns the shared 2^20-leaf log, building it on first use.
func benchLog(b *testing.B) *Log {
	b.Helper()
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "anchor-bench")
		if bench.err != nil {
			return
		}
		bench.store, bench.err = OpenBoltStore(filepath.Join(bench.dir, "bench.db"))
		if bench.err != nil {
			return
		}
		bench.log, bench.err = OpenLog(bench.store, "bench")
		if bench.err != nil {
			return
		}
		batch := make([][]byte, MaxBatchLeaves)
		for i := 0; i < benchLogSize && bench.err == nil; i += len(batch) {
			for j := range batch {
				batch[j] = benchLeaf(uint64(i + j))
			}
			_, bench.err = bench.log.Append(batch)
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.log
}

// closeBenchLog releases the shared benchmark log, if one was built.
func closeBenchLog() {
	if bench.store != nil {
		bench.log.Close()
		bench.store.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

// benchLeaf is a 100-byte leaf, about a small signed envelope.
func benchLeaf(i uint64) []byte {
	d := make([]byte, 100)
	copy(d, fmt.Appendf(nil, "leaf %d", i))
	return d
}

// BenchmarkAppendBatch: one durable (fsynced) bbolt transaction per
// iteration, holding 1000 leaves of 100 bytes.
func BenchmarkAppendBatch(b *testing.B) {
	const batchSize = 1000
	l := openLog(b, newBoltStore(b), "bench")
	batch := make([][]byte, batchSize)
	for j := range batch {
		batch[j] = benchLeaf(uint64(j))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkAppendOneParallel: 64 concurrent callers appending one 100-byte
// leaf each, sharing durable commits (group commit).
func BenchmarkAppendOneParallel(b *testing.B) {
	l := openLog(b, newBoltStore(b), "bench")
	leaf := benchLeaf(0)
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.AppendOne(leaf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkInclusionProof: a proof for a random leaf of the 2^20 log.
func BenchmarkInclusionProof(b *testing.B) {
	l := benchLog(b)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.InclusionProof(rng.Uint64N(benchLogSize), benchLogSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsistencyProof: a proof from a random earlier size to 2^20.
func BenchmarkConsistencyProof(b *testing.B) {
	l := benchLog(b)
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.ConsistencyProof(1+rng.Uint64N(benchLogSize-1), benchLogSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyInclusion: proof.VerifyInclusion of one proof at 2^20.
func BenchmarkVerifyInclusion(b *testing.B) {
	l := benchLog(b)
	const index = benchLogSize/3 + 7
	p, err := l.InclusionProof(index, benchLogSize)
	if err != nil {
		b.Fatal(err)
	}
	root, err := l.Root()
	if err != nil {
		b.Fatal(err)
	}
	leafHash := hasher.HashLeaf(benchLeaf(index))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := proof.VerifyInclusion(hasher, index, benchLogSize, leafHash, p, root[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyConsistency: proof.VerifyConsistency of one proof to 2^20.
func BenchmarkVerifyConsistency(b *testing.B) {
	l := benchLog(b)
	const size1 = benchLogSize/3 + 7
	p, err := l.ConsistencyProof(size1, benchLogSize)
	if err != nil {
		b.Fatal(err)
	}
	root1, err := l.RootAt(size1)
	if err != nil {
		b.Fatal(err)
	}
	root2, err := l.Root()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := proof.VerifyConsistency(hasher, size1, benchLogSize, p, root1[:], root2[:]); err != nil {
			b.Fatal(err)
		}
	}
}
