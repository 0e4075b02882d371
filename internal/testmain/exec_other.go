//go:build !unix

package testmain

func reexec(string, []string, []string) {}
