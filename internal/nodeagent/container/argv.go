package container

// Argv returns the process's argv by the kubelet's rules: a container's
// command replaces the image's Entrypoint and drops its Cmd; args replace
// Cmd; $(VAR) in both is expanded from the container's env (not the
// image's, which the kubelet never sees).
func Argv(command, args, entrypoint, cmd []string, env map[string]string) []string {
	var argv []string
	switch {
	case len(command) > 0:
		argv = append(argv, command...)
		argv = append(argv, args...)
	case len(args) > 0:
		argv = append(argv, entrypoint...)
		argv = append(argv, args...)
	default:
		argv = append(argv, entrypoint...)
		argv = append(argv, cmd...)
	}
	for i, s := range argv {
		// Image entrypoints are not expanded by a kubelet either, but they
		// rarely contain "$(" and this keeps one rule for all of argv.
		argv[i] = ExpandVars(s, env)
	}
	return argv
}
