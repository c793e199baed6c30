" *.journey files are journeys (Neovim before 0.8 reads this; later ones vim.filetype.add too).
autocmd BufRead,BufNewFile *.journey setfiletype journey
