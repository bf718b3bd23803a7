{
  "targets": [
    {
      "target_name": "usernet_native",
      "conditions": [
        [
          "OS=='linux'",
          {
            "sources": [
              "native/addon.c",
              "native/util.c",
              "native/tap.c",
              "native/ping.c",
              "native/poller.c",
              "native/framing.c",
              "native/memory.c",
              "native/udp.c",
              "native/inet.c",
              "native/unixdgram.c",
              "native/notify.c"
            ],
            "defines": ["NAPI_VERSION=8"],
            "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
          },
          {
            "sources": ["native/unsupported.c"],
            "defines": ["NAPI_VERSION=8"]
          }
        ]
      ]
    },
    {
      "target_name": "usernet_sandbox",
      "conditions": [
        [
          "OS=='linux'",
          {
            "sources": ["native/sandbox.c", "native/util.c"],
            "defines": ["NAPI_VERSION=8"],
            "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
          },
          {
            "sources": ["native/unsupported.c"],
            "defines": ["NAPI_VERSION=8"]
          }
        ]
      ]
    }
  ]
}
