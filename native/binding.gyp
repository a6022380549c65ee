{
  "targets": [
    {
      "target_name": "trellis_tun",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/tun_device.cc",
        "src/tun_linux.cc",
        "src/tun_offload.cc",
        "src/tun_offload_test.cc",
        "src/tun_darwin.cc",
        "src/tun_windows.cc",
        "src/udp_linux.cc",
        "src/udp_recv_linux.cc",
        "src/udp_send_linux.cc",
        "src/fd_pass.cc",
        "src/sock_mark.cc",
        "src/checksum.cc",
        "src/fd_sendfile.cc",
        "src/fd_splice.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        [
          "OS=='mac'",
          {
            "xcode_settings": {
              "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
              "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
              "MACOSX_DEPLOYMENT_TARGET": "11.0"
            }
          }
        ],
        [
          "OS=='win'",
          {
            "defines": ["WIN32_LEAN_AND_MEAN", "NOMINMAX"],
            "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/std:c++17"], "ExceptionHandling": 0 } }
          }
        ]
      ]
    }
  ]
}
