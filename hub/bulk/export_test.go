package bulk

// MergePatch is mergePatch, for the tests.
var MergePatch = mergePatch
