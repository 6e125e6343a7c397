{
  "targets": [
    {
      "target_name": "decoflow",
      "sources": ["<!@(node scripts/sources.js core addon)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions"],
      "libraries": ["-ldl", "-pthread"],
      "conditions": [
        ["'<!(node -p \"process.env.DECOFLOW_PORTABLE ? 0 : 1\")'=='1'", {
          "cflags_cc": ["-march=native"],
          "defines": ["DECOFLOW_NATIVE_ARCH"]
        }]
      ]
    }
  ]
}
