package main

// cpuModel returns the model name of the first CPU.
func (h host) cpuModel() string {
	cpus, err := h.fs.CPUInfo()
	if err != nil || len(cpus) == 0 || cpus[0].ModelName == "" {
		return "unknown CPU"
	}
	return cpus[0].ModelName
}
