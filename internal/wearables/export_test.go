package wearables

// NewService builds the domain service from deps, so tests can run several
// "replicas" at once.
func NewService(deps Deps) (*Service, error) { return newService(deps) }
