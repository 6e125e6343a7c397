{
  "variables": {
    "portable%": "<!(node -p \"process.env.DECOFLOW_PORTABLE ? 1 : 0\")",
    "common_cflags": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions"]
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["<@(common_cflags)"],
    "conditions": [
      ["portable==0", { "cflags_cc": ["-march=native"], "defines": ["DECOFLOW_NATIVE_ARCH"] }]
    ]
  },
  "targets": [
    {
      "target_name": "decoflow",
      "sources": ["<!@(node scripts/sources.js core addon)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "libraries": ["-ldl", "-pthread"],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["decoflow_cpu_baseline", "decoflow_cpu_avx2", "decoflow_cpu_avx512"]
        }, {
          "dependencies": ["decoflow_cpu_baseline"]
        }],
        ["portable==1 and OS=='linux' and target_arch=='x64'", {
          "defines": ["DECOFLOW_GLIBC_COMPAT"],
          "ldflags": ["-static-libstdc++"],
          "libraries": ["-Wl,--no-as-needed", "-l:libpthread.so.0", "-l:libdl.so.2", "-l:libm.so.6"]
        }]
      ]
    },
    {
      "target_name": "decoflow_cpu_baseline",
      "type": "static_library",
      "sources": ["<!@(node scripts/sources.js cpu_levels)"],
      "defines": ["DF_CPU_NS=cpu_baseline", "DF_CPU_LEVEL=0"],
      "conditions": [["target_arch=='x64'", { "cflags_cc": ["<!@(node scripts/sources.js --flags baseline)"] }]]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "decoflow_cpu_avx2",
          "type": "static_library",
          "sources": ["<!@(node scripts/sources.js cpu_levels)"],
          "defines": ["DF_CPU_NS=cpu_avx2", "DF_CPU_LEVEL=1"],
          "cflags_cc": ["<!@(node scripts/sources.js --flags avx2)"]
        },
        {
          "target_name": "decoflow_cpu_avx512",
          "type": "static_library",
          "sources": ["<!@(node scripts/sources.js cpu_levels)"],
          "defines": ["DF_CPU_NS=cpu_avx512", "DF_CPU_LEVEL=2"],
          "cflags_cc": ["<!@(node scripts/sources.js --flags avx512)"]
        }
      ]
    }]
  ]
}
