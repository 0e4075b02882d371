//go:build unix

package testmain

import "syscall"

func reexec(path string, args, env []string) { _ = syscall.Exec(path, args, env) }
