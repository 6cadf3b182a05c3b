package config

var directives = []Spec{}
