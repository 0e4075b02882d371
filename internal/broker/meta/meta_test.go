package meta

import "testing"

func TestTopicByIDFindsTopicsInSealedAndUnsealedImagesAndClonesForgetTheIndex(t *testing.T) {
	a, b := &Topic{Name: "a", ID: NewTopicID()}, &Topic{Name: "b", ID: NewTopicID()}
	img := &Image{Topics: map[string]*Topic{"a": a, "b": b}}
	if got := img.TopicByID(b.ID); got != b {
		t.Fatalf("unsealed: got %v, want b", got)
	}
	img.Seal()
	if got := img.TopicByID(a.ID); got != a {
		t.Fatalf("sealed: got %v, want a", got)
	}
	if got := img.TopicByID(NewTopicID()); got != nil {
		t.Fatalf("unknown id: got %v", got)
	}
	next := img.Clone()
	delete(next.Topics, "a")
	if got := next.TopicByID(a.ID); got != nil {
		t.Fatalf("a clone that dropped a still finds it through the old index: %v", got)
	}
	next.Seal()
	if got := next.TopicByID(b.ID); got == nil || got.Name != "b" {
		t.Fatalf("resealed clone: got %v, want b", got)
	}
}
