-- Run by tests/editors.rs: `nvim --headless -u NONE -c "luafile diagnostic.lua"` with
-- JOURNEY_BIN (the journey binary), JOURNEY_FILE (a broken journey file) and JOURNEY_OUT (where
-- to write the diagnostics seen) in the environment, and editors/nvim on the runtimepath.
-- Opens the file, lets editors/nvim start `journey lsp`, waits for a diagnostic, writes them.
vim.cmd("filetype on")
require("journey").setup({ cmd = { os.getenv("JOURNEY_BIN"), "lsp" } })
vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("JOURNEY_FILE")))
local ok = vim.wait(60000, function()
  return #vim.diagnostic.get(0) > 0
end, 20)
local lines = { "filetype=" .. vim.bo.filetype, "clients=" .. #vim.lsp.get_active_clients() }
if ok then
  for _, d in ipairs(vim.diagnostic.get(0)) do
    table.insert(lines, string.format("%d:%d:%d:%s", d.lnum + 1, d.col + 1, d.severity, (d.message:gsub("\n", " | "))))
  end
end
vim.fn.writefile(lines, os.getenv("JOURNEY_OUT"))
vim.cmd("qall!")
