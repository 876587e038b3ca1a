package bulk

// MergePatch is mergePatch, for the tests.
var MergePatch = mergePatch

// SameJSON is sameJSON, for the tests.
var SameJSON = sameJSON
