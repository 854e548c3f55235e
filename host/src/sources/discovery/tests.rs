//! Discovery against the fake kube-apiserver.
