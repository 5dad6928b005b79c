/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// No React plugin: esbuild compiles TSX with the automatic runtime, which is all this
// small app needs (no Babel, no fast-refresh machinery in the dependency tree).
const gateway = process.env.TWINLENS_GATEWAY_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    target: "es2020", sourcemap: false, chunkSizeWarningLimit: 300,
    // React in a chunk of its own: the app's code stays under the limit, and a new release
    // of the app leaves the browser's cached React as it is
    rollupOptions: { output: { manualChunks: { react: ["react", "react-dom", "react-dom/client"] } } },
  },
  server: { proxy: { "/api": { target: gateway, changeOrigin: false } } },
  preview: { proxy: { "/api": { target: gateway, changeOrigin: false } } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
