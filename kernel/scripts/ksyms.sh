#!/bin/sh
# Usage: ksyms.sh NM ELF > ksyms.S
# Writes the kernel's function symbols (address-sorted, demangled) as an
# assembly table that core/panic.cc searches to name backtrace frames.
# Only text symbols: their addresses do not move when this table is linked in.
nm="$1"; elf="$2"
"$nm" -n -C --defined-only "$elf" | awk '
$2 ~ /^[tTwW]$/ {
    addr = $1
    name = $0
    sub(/^[0-9a-fA-F]+ [a-zA-Z] /, "", name)
    gsub(/\\/, "\\\\", name)
    gsub(/"/, "\\\"", name)
    if (length(name) > 120) name = substr(name, 1, 117) "..."
    n++; a[n] = addr; s[n] = name
}
END {
    print "\t.section .ksyms, \"a\""
    print "\t.balign 8"
    print "\t.globl ksyms_count"
    print "ksyms_count:\t.quad " n
    print "\t.globl ksyms_addr"
    print "ksyms_addr:"
    for (i = 1; i <= n; i++) print "\t.quad 0x" a[i]
    print "\t.globl ksyms_name"
    print "ksyms_name:"
    for (i = 1; i <= n; i++) print "\t.quad .Ls" i
    for (i = 1; i <= n; i++) print ".Ls" i ":\t.asciz \"" s[i] "\""
}'
