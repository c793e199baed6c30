-- Neovim: the `journey` filetype, `journey lsp` for it, and the tree-sitter parser of
-- editors/tree-sitter-journey. Put this folder on the runtimepath (it also holds the
-- queries, queries/journey/*.scm), e.g. in init.lua:
--
--   vim.opt.rtp:append("/path/to/journey/editors/nvim")
--   require("journey").setup()
local M = {}

function M.setup(opts)
  opts = opts or {}
  local cmd = opts.cmd or { "journey", "lsp" }
  vim.filetype.add({ extension = { journey = "journey" } })

  -- The language server: through nvim-lspconfig when it is installed, else Neovim's own client.
  local has_lspconfig, configs = pcall(require, "lspconfig.configs")
  if has_lspconfig then
    if not configs.journey then
      configs.journey = {
        default_config = {
          cmd = cmd,
          filetypes = { "journey" },
          root_dir = require("lspconfig.util").root_pattern("journeys", ".git"),
          single_file_support = true,
        },
      }
    end
    require("lspconfig").journey.setup(opts.lsp or {})
  else
    local clients = {}
    vim.api.nvim_create_autocmd("FileType", {
      pattern = "journey",
      callback = function(args)
        local root = M.root(args.buf)
        local config = { name = "journey", cmd = cmd, root_dir = root }
        if vim.lsp.start then
          vim.lsp.start(config)
        else
          -- Neovim 0.7: one client per root, attached to each buffer.
          clients[root] = clients[root] or vim.lsp.start_client(config)
          vim.lsp.buf_attach_client(args.buf, clients[root])
        end
      end,
    })
  end

  -- The tree-sitter parser, for nvim-treesitter's :TSInstall journey.
  local has_ts, parsers = pcall(require, "nvim-treesitter.parsers")
  if has_ts and parsers.get_parser_configs then
    local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
    parsers.get_parser_configs().journey = {
      install_info = {
        url = here .. "../../tree-sitter-journey",
        files = { "src/parser.c" },
        generate_requires_npm = false,
      },
      filetype = "journey",
    }
  end
end

-- The folder above a buffer's file that holds `journeys/` or `.git`, else the file's own.
function M.root(buf)
  local file = vim.api.nvim_buf_get_name(buf)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  local d = dir
  while d and d ~= "" do
    if vim.fn.isdirectory(d .. "/journeys") == 1 or vim.fn.isdirectory(d .. "/.git") == 1 then
      return d
    end
    local parent = vim.fn.fnamemodify(d, ":h")
    if parent == d then
      break
    end
    d = parent
  end
  return dir
end

return M
