package capture

import "syscall"

// mapPopulate pre-faults the mapping: one system call instead of a page
// fault every few pages (the file is read once, front to back).
const mapPopulate = syscall.MAP_POPULATE
