// Package archtest holds the tests that keep the tree's layout honest, run by make test like any
// other: the import rules between components (shared/ARCHITECTURE.md: agent -> drivers, pkg;
// hub -> pkg; console -> pkg without pkg/wire; drivers -> pkg; pkg -> pkg; nothing imports e2e),
// no test code in a shipped binary, a doc comment on every package, and a tidy go.mod. It has
// no code of its own; it lives under internal/ so that nothing can import it.
package archtest
