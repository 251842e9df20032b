//! VIM adapters (Kubernetes, K3s, KubeEdge, simulated) behind one `Vim` trait. Not built yet:
//! see the open issues.
