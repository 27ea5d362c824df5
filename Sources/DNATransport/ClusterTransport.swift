// The cluster transport lands here.
