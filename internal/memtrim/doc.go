// Package memtrim gives back the pages of a process's own binary that only its start-up touched. A Go binary's
// code, function tables and read-only data are mapped from the file; start-up (package initialisers, client-go's
// scheme registration, loading the BPF objects) touches much of them once, and those pages then stay resident,
// charged to the process, though it never uses them again. Advising the kernel to page out the binary's read-only
// mappings (MADV_PAGEOUT, Linux >= 5.4) drops them; what the process still uses is faulted back on demand (from the
// page cache or the file), so what stays resident is its working set.
package memtrim
